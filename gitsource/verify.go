package gitsource

import "github.com/go-git/go-git/v5/plumbing/object"

// VerifyCommit checks that commit carries one valid signature by one of
// keys (key file contents, as for WithCommitKeys): *UnsignedCommitError or
// *UntrustedSignatureError otherwise. `bootsync publish` uses it to record
// in a fleet artifact that its commit's signature verified.
func VerifyCommit(commit *object.Commit, keys ...string) error {
	var o options
	if err := WithCommitKeys(keys...)(&o); err != nil {
		return err
	}
	return verifyCommitSignature(commit, o.pgpKeys, o.sshKeys)
}
