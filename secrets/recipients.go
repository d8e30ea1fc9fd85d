package secrets

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// OpensFor reports, without decrypting, whether a host holding the given
// recipients (age1… strings, or SSH public keys in authorized_keys form)
// can open the SOPS file: enough of its key groups name one of them.
func (f *SOPSFile) OpensFor(held []string) bool {
	opened := 0
	for _, g := range f.Groups {
		if slices.ContainsFunc(g, func(r string) bool { return slices.Contains(held, normalizeRecipient(r)) }) {
			opened++
		}
	}
	return opened > 0 && opened >= f.Threshold
}

// OpensFor reports, without decrypting, whether a plain age file has a
// stanza for one of the SSH public keys held. known is false when the file
// has anonymous (X25519) stanzas and no match: age does not say whom those
// are for, so only the host can tell.
func (f *AgeFile) OpensFor(held []string) (opens, known bool) {
	anonymous := false
	for _, s := range f.Stanzas {
		if s.SSHTag == "" {
			anonymous = anonymous || s.Type != "scrypt"
			continue
		}
		for _, h := range held {
			if tag, err := SSHTag(h); err == nil && tag == s.SSHTag {
				return true, true
			}
		}
	}
	return false, !anonymous
}

// SSHTag is the tag an ssh-ed25519 or ssh-rsa age stanza carries for an SSH
// public key: base64 (no padding) of the first 4 bytes of SHA-256 of the
// key's wire form, as agessh writes it.
func SSHTag(authorizedKey string) (string, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return "", fmt.Errorf("not an SSH public key: %w", err)
	}
	sum := sha256.Sum256(pub.Marshal())
	return base64.RawStdEncoding.EncodeToString(sum[:4]), nil
}

func normalizeRecipient(r string) string {
	// sops keeps SSH recipients as given; compare them without a comment.
	if f := strings.Fields(r); len(f) >= 2 && strings.HasPrefix(f[0], "ssh-") {
		return f[0] + " " + f[1]
	}
	return strings.TrimSpace(r)
}
