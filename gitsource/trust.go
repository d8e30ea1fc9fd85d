package gitsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	gossh "golang.org/x/crypto/ssh"
)

// sshSigNamespace is the SSHSIG namespace git signs commits in.
const sshSigNamespace = "git"

// errUntrustedKey says a signature was made by a key the host does not trust.
var errUntrustedKey = errors.New("the signing key is not one of this host's trusted commit keys")

func (r *Remote) verifySignature(c *object.Commit) error {
	if len(r.opts.pgpKeys) == 0 && len(r.opts.sshKeys) == 0 {
		return nil
	}
	if err, ok := r.sigMemo[c.Hash]; ok {
		return err
	}
	err := verifyCommitSignature(c, r.opts.pgpKeys, r.opts.sshKeys)
	if r.sigMemo == nil || len(r.sigMemo) > 64 {
		r.sigMemo = map[plumbing.Hash]error{}
	}
	r.sigMemo[c.Hash] = err
	return err
}

// verifyCommitSignature checks that commit carries exactly one signature and
// that it is a valid OpenPGP signature by one of pgpKeys or a valid SSH
// signature (git's "git" namespace) by one of sshKeys. It returns
// *UnsignedCommitError or *UntrustedSignatureError otherwise. X.509 (gpgsm)
// signatures are refused as untrusted.
func verifyCommitSignature(commit *object.Commit, pgpKeys openpgp.EntityList, sshKeys []gossh.PublicKey) error {
	id := commit.Hash.String()
	sig := strings.TrimSpace(commit.PGPSignature)
	if sig == "" {
		return &UnsignedCommitError{Commit: id}
	}
	format := signatureFormat(sig)
	if n := strings.Count(sig, "-----BEGIN "); n != 1 {
		return &UntrustedSignatureError{Commit: id, Format: format, Err: fmt.Errorf("a commit must carry exactly one signature, this one has %d", n)}
	}
	var payload plumbing.MemoryObject
	if err := commit.EncodeWithoutSignature(&payload); err != nil {
		return fmt.Errorf("encode commit %s for signature verification: %w", id, err)
	}
	pr, err := payload.Reader()
	if err != nil {
		return fmt.Errorf("encode commit %s for signature verification: %w", id, err)
	}
	signed, err := io.ReadAll(pr)
	if err != nil {
		return fmt.Errorf("encode commit %s for signature verification: %w", id, err)
	}

	switch format {
	case "openpgp":
		keyID := pgpIssuer(sig)
		if len(pgpKeys) == 0 {
			return &UntrustedSignatureError{Commit: id, Format: format, KeyID: keyID, Err: errors.New("no OpenPGP commit keys are configured")}
		}
		if _, err := openpgp.CheckArmoredDetachedSignature(pgpKeys, bytes.NewReader(signed), strings.NewReader(sig), nil); err != nil {
			if errors.Is(err, pgperrors.ErrUnknownIssuer) {
				err = errUntrustedKey
			}
			return &UntrustedSignatureError{Commit: id, Format: format, KeyID: keyID, Err: err}
		}
		return nil
	case "ssh":
		s, err := sshsig.Unarmor([]byte(sig))
		if err != nil {
			return &UntrustedSignatureError{Commit: id, Format: format, Err: fmt.Errorf("parse SSH signature: %w", err)}
		}
		fp := gossh.FingerprintSHA256(s.PublicKey)
		for _, k := range sshKeys {
			if gossh.FingerprintSHA256(k) != fp {
				continue
			}
			if err := sshsig.Verify(bytes.NewReader(signed), s, k, s.HashAlgorithm, sshSigNamespace); err != nil {
				return &UntrustedSignatureError{Commit: id, Format: format, KeyID: fp, Err: err}
			}
			return nil
		}
		return &UntrustedSignatureError{Commit: id, Format: format, KeyID: fp, Err: errUntrustedKey}
	default:
		return &UntrustedSignatureError{Commit: id, Format: format, Err: errors.New("only OpenPGP and SSH commit signatures are supported")}
	}
}

func signatureFormat(sig string) string {
	switch {
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return "openpgp"
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return "ssh"
	case strings.HasPrefix(sig, "-----BEGIN SIGNED MESSAGE-----"), strings.HasPrefix(sig, "-----BEGIN CERTIFICATE-----"):
		return "x509"
	}
	return "unknown"
}

// pgpIssuer returns the key id an OpenPGP signature names as its issuer.
func pgpIssuer(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return ""
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return ""
	}
	if s, ok := p.(*packet.Signature); ok && s.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return ""
}

// descends reports whether ancestor is reachable from tip. It walks the
// parents breadth first; reaching the edge of a shallow cache without an
// answer gives errNeedHistory.
func (r *Remote) descends(ctx context.Context, tip, ancestor plumbing.Hash) (bool, error) {
	key := [2]plumbing.Hash{tip, ancestor}
	if ok, found := r.ffMemo[key]; found {
		return ok, nil
	}
	shallows, err := r.storage.Shallow()
	if err != nil {
		return false, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("read shallow commits: %w", err)}
	}
	shallow := len(shallows) > 0
	ok, incomplete, err := walkAncestry(ctx, r, tip, ancestor)
	switch {
	case err != nil:
		return false, err
	case !ok && incomplete && shallow:
		return false, errNeedHistory
	case !ok && incomplete:
		return false, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("the history of %s is incomplete", tip)}
	}
	if r.ffMemo == nil || len(r.ffMemo) > 64 {
		r.ffMemo = map[[2]plumbing.Hash]bool{}
	}
	r.ffMemo[key] = ok
	return ok, nil
}

func walkAncestry(ctx context.Context, r *Remote, tip, ancestor plumbing.Hash) (found, incomplete bool, err error) {
	if !r.has(ancestor) {
		// Not in the cache at all. A complete history would contain it if it
		// were an ancestor, so look for an incomplete one, cheaply.
		shallows, _ := r.storage.Shallow()
		return false, len(shallows) > 0, nil
	}
	queue := []plumbing.Hash{tip}
	seen := map[plumbing.Hash]bool{tip: true}
	for n := 0; len(queue) > 0; n++ {
		if n%512 == 0 {
			if err := ctx.Err(); err != nil {
				return false, false, err
			}
		}
		h := queue[0]
		queue = queue[1:]
		if h == ancestor {
			return true, false, nil
		}
		c, err := object.GetCommit(r.storage, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			incomplete = true // beyond the shallow edge
			continue
		}
		if err != nil {
			return false, false, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("read commit %s: %w", h, err)}
		}
		for _, p := range c.ParentHashes {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, incomplete, nil
}

// revision returns commit's tree with the sub-path applied, after checking
// that the cache holds every object of that tree. The check is incremental:
// subtrees unchanged since the last checked commit are skipped, so a poll
// that changed one file checks one file.
func (r *Remote) revision(commit *object.Commit) (*Revision, error) {
	tree, err := NewTreeFS(r.repo.Storer, commit)
	if err != nil {
		return nil, &CorruptCacheError{Dir: r.dir, Err: err}
	}
	if r.opts.subPath != "." {
		if tree, err = tree.subtree(r.opts.subPath); err != nil {
			return nil, fmt.Errorf("sub-path %s of commit %s: %w", r.opts.subPath, commit.Hash, err)
		}
	}
	if r.checkedTree == nil || r.checkedTree.Hash != tree.root.Hash {
		if err := checkComplete(r, tree.root, r.checkedTree, ""); err != nil {
			return nil, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("commit %s: %w", commit.Hash, err)}
		}
		r.checkedTree = tree.root
	}
	return &Revision{Commit: commit.Hash.String(), FS: tree}, nil
}

// checkComplete verifies that every object reachable from tree is in the
// cache, skipping entries identical to those of known (a tree already
// checked, or nil).
func checkComplete(r *Remote, tree, known *object.Tree, prefix string) error {
	old := map[string]object.TreeEntry{}
	if known != nil {
		for _, e := range known.Entries {
			old[e.Name] = e
		}
	}
	for _, e := range tree.Entries {
		prev, had := old[e.Name]
		if had && prev.Hash == e.Hash && prev.Mode == e.Mode {
			continue
		}
		name := prefix + e.Name
		switch e.Mode {
		case filemode.Submodule:
		case filemode.Dir:
			sub, err := object.GetTree(r.storage, e.Hash)
			if err != nil {
				return fmt.Errorf("tree %s (%s): %w", e.Hash, name, err)
			}
			var knownSub *object.Tree
			if had && prev.Mode == filemode.Dir {
				knownSub, _ = object.GetTree(r.storage, prev.Hash)
			}
			if err := checkComplete(r, sub, knownSub, name+"/"); err != nil {
				return err
			}
		default:
			if !r.has(e.Hash) {
				return fmt.Errorf("blob %s (%s): %w", e.Hash, name, plumbing.ErrObjectNotFound)
			}
		}
	}
	return nil
}
