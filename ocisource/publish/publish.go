// Package publish is `bootsync publish`: it packs the fleet repository at
// a commit into a fleet artifact (see package ocisource), pushes it,
// signs its digest in cosign's format and moves the tag to it, in that
// order, so the tag never names an unsigned artifact. Publishing the same
// commit again writes nothing.
package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/registry"
)

// Input is what to publish, and where.
type Input struct {
	Repository *git.Repository // the Git repository, with its full history
	Commit     string          // the commit to publish (40 hex digits)
	Branch     string          // the branch it is on, for the revision annotation ("" if none)
	FS         gitsource.FS    // the fleet directory at Commit
	Path       string          // where that directory is in the repository ("." for its root)
	Target     string          // oci://registry/repository:tag
	Signer     signature.SignerVerifier
	// CommitKeys (key file contents, as for trust.commitKeys): when given,
	// the commit's signature must verify with one of them, and the
	// artifact says it did.
	CommitKeys []string
	Source     string // the Git URL, for org.opencontainers.image.source
	// AllowReset lets the tag move to this commit although it does not
	// descend from the commit the tag names now (or the tag names
	// something else than a fleet artifact).
	AllowReset string
	Registry   *registry.Client
}

// Result is what Publish did.
type Result struct {
	Reference string // repository@digest of the artifact the tag names now
	Metadata  ocisource.Metadata
	// Unchanged: the tag already named a signed artifact of this commit;
	// nothing was written.
	Unchanged bool
	Signed    bool   // a signature was written
	Previous  string // the commit the tag named before ("" if none)
}

// Publish publishes in.Commit to in.Target.
func Publish(ctx context.Context, in Input) (*Result, error) {
	ref, err := ocisource.ParseURL(in.Target)
	if err != nil {
		return nil, err
	}
	if strings.Contains(ref, "@") {
		return nil, fmt.Errorf("publish to %s: name a tag (…:main), not a digest", in.Target)
	}
	if in.Signer == nil || in.Registry == nil || in.Repository == nil || in.FS == nil {
		return nil, errors.New("publish: repository, files, signer and registry are all required")
	}
	meta, err := metadata(ctx, in)
	if err != nil {
		return nil, err
	}
	repo := ref[:strings.LastIndex(ref, ":")]
	prev, err := previous(ctx, in, ref, meta)
	if err != nil {
		return nil, err
	}
	res := &Result{Metadata: meta}
	if prev != nil {
		res.Previous = prev.art.Commit
		if prev.art.Commit == meta.Commit {
			// The same commit: keep what hosts may already have.
			res.Reference = repo + "@" + prev.digest
			res.Signed, err = sign(ctx, in.Registry, res.Reference, in.Signer)
			res.Unchanged = !res.Signed
			return res, err
		}
	}
	img, err := image(in.FS, meta)
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	res.Reference = repo + "@" + digest.String()
	if err := in.Registry.Push(ctx, res.Reference, img); err != nil {
		return nil, fmt.Errorf("push %s: %w", res.Reference, err)
	}
	if res.Signed, err = sign(ctx, in.Registry, res.Reference, in.Signer); err != nil {
		return nil, err
	}
	if err := in.Registry.Push(ctx, ref, img); err != nil {
		return nil, fmt.Errorf("tag %s: %w", ref, err)
	}
	return res, nil
}

// metadata describes in.Commit: its generation, time and signature check.
func metadata(ctx context.Context, in Input) (ocisource.Metadata, error) {
	h := plumbing.NewHash(in.Commit)
	c, err := object.GetCommit(in.Repository.Storer, h)
	if err != nil {
		return ocisource.Metadata{}, fmt.Errorf("read commit %s: %w", in.Commit, err)
	}
	gen, err := Generation(ctx, in.Repository, h)
	if err != nil {
		return ocisource.Metadata{}, fmt.Errorf("generation of commit %s: %w", in.Commit, err)
	}
	m := ocisource.Metadata{Commit: c.Hash.String(), Generation: gen, CommitTime: c.Committer.When.UTC(),
		CommitSignature: ocisource.SignatureUnverified, Path: in.Path, Source: gitsource.Redact(in.Source),
		Revision: "sha1:" + c.Hash.String()}
	if in.Branch != "" {
		m.Revision = in.Branch + "@" + m.Revision
	}
	if m.Path == "" {
		m.Path = "."
	}
	if len(in.CommitKeys) > 0 {
		if err := gitsource.VerifyCommit(c, in.CommitKeys...); err != nil {
			return ocisource.Metadata{}, fmt.Errorf("commit %s: %w", in.Commit, err)
		}
		m.CommitSignature = ocisource.SignatureVerified
	}
	return m, nil
}

// published is the fleet artifact a tag names.
type published struct {
	digest string
	art    *ocisource.Artifact
}

// previous reads what the tag names now and checks that moving it to
// meta.Commit goes forward: the new commit must descend from the
// published one, unless AllowReset names it.
func previous(ctx context.Context, in Input, tag string, meta ocisource.Metadata) (*published, error) {
	m, err := in.Registry.GetManifest(ctx, tag)
	if registry.ReasonOf(err) == registry.ReasonNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read what %s names now: %w", tag, err)
	}
	reset := in.AllowReset != "" && strings.EqualFold(in.AllowReset, meta.Commit)
	art, err := ocisource.ParseManifest(m.Raw)
	if err != nil {
		if reset {
			return nil, nil
		}
		return nil, fmt.Errorf("%s names something that is not a fleet artifact (%v): replace it only with --allow-reset %s", tag, err, meta.Commit)
	}
	digest, err := manifestDigest(m.Raw)
	if err != nil {
		return nil, err
	}
	p := &published{digest: digest, art: art}
	if art.Commit == meta.Commit || reset {
		return p, nil
	}
	ok, err := descends(in.Repository, meta.Commit, art.Commit)
	if err != nil {
		return nil, fmt.Errorf("%s names commit %s: %w", tag, art.Commit, err)
	}
	if !ok {
		return nil, fmt.Errorf("commit %s does not descend from commit %s, which %s names now (history was rewritten, or an older commit is being published): hosts would refuse it; publish it anyway only with --allow-reset %s",
			meta.Commit, art.Commit, tag, meta.Commit)
	}
	return p, nil
}

func descends(repo *git.Repository, commit, ancestor string) (bool, error) {
	a, err := object.GetCommit(repo.Storer, plumbing.NewHash(ancestor))
	if err != nil {
		return false, fmt.Errorf("it is not in the local repository (fetch the full history): %w", err)
	}
	c, err := object.GetCommit(repo.Storer, plumbing.NewHash(commit))
	if err != nil {
		return false, err
	}
	return a.IsAncestor(c)
}

func manifestDigest(raw []byte) (string, error) {
	h, _, err := v1SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	return h, nil
}
