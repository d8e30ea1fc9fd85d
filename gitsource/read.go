package gitsource

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
)

// CloneForRead mirrors every branch and tag of the repository at url, with
// full history, into a bare cache under cacheDir and opens it, so that
// `bootsync validate/hosts/render/diff --repo URL` read any revision straight
// from the object store. The cache (<cacheDir>/<key>-mirror) is updated
// incrementally on later calls, and re-cloned when it fails verification.
//
// Revisions resolve as in a clone: "main" or "origin/main" (branches),
// tags, commit ids and expressions such as "main~1"; "HEAD" is the server's
// default branch.
//
// opts are the transport options of New (auth, CA bundle, allowHTTP, retry).
// Ref, sub-path and trust options do not apply to a mirror and are refused:
// CloneForRead does not check signatures or fast-forward.
func CloneForRead(ctx context.Context, url, cacheDir string, opts ...Option) (*Local, error) {
	r, err := New(url, append(opts, WithCacheDir(cacheDir))...)
	if err != nil {
		return nil, err
	}
	if r.opts.ref != "HEAD" || r.opts.subPath != "." || r.opts.allowReset != "" ||
		len(r.opts.pgpKeys) > 0 || len(r.opts.sshKeys) > 0 {
		return nil, fmt.Errorf("clone %s for reading: ref, sub-path, commit key and reset options do not apply to a mirror", r.display)
	}
	r.dir += "-mirror"
	unlock, err := lockFile(ctx, r.dir+".lock")
	if err != nil {
		return nil, fmt.Errorf("clone %s for reading: lock cache: %w", r.display, err)
	}
	defer unlock()
	for try := 0; ; try++ {
		err := r.mirror(ctx)
		var corrupt *CorruptCacheError
		if errors.As(err, &corrupt) && try == 0 {
			if err := r.discardCache(); err != nil {
				return nil, fmt.Errorf("clone %s for reading: %w", r.display, &CorruptCacheError{Dir: r.dir, Err: r.red.foreign(err)})
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("clone %s for reading: %w", r.display, err)
		}
		return &Local{dir: r.display, repo: r.repo}, nil
	}
}

// mirror brings the cache in line with the server's branches and tags.
func (r *Remote) mirror(ctx context.Context) error {
	if err := r.openCache(); err != nil {
		return err
	}
	remoteRefs, head, headHash, err := r.fetchMirrored(ctx)
	if err != nil {
		return err
	}
	if err := r.setMirroredRefs(remoteRefs); err != nil {
		return err
	}
	if err := r.dropStaleRefs(remoteRefs); err != nil {
		return err
	}
	switch {
	case head != "" && remoteRefs[head] != plumbing.ZeroHash:
		err = r.storage.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, head))
	case headHash != nil:
		err = r.storage.SetReference(plumbing.NewHashReference(plumbing.HEAD, *headHash))
	}
	if err != nil {
		return fmt.Errorf("set HEAD: %w", r.red.foreign(err))
	}
	return nil
}

// fetchMirrored lists the server's branches, tags and HEAD and fetches the
// objects of those the cache does not hold yet.
func (r *Remote) fetchMirrored(ctx context.Context) (remoteRefs map[plumbing.ReferenceName]plumbing.Hash, head plumbing.ReferenceName, headHash *plumbing.Hash, err error) {
	err = r.retry(ctx, "fetch branches and tags", func(ctx context.Context) error {
		sess, ar, err := r.advertise(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = sess.Close() }()
		remoteRefs = mirroredRefs(ar)
		headHash, head = ar.Head, ""
		for _, v := range ar.Capabilities.Get(capability.SymRef) {
			if from, to, ok := strings.Cut(v, ":"); ok && from == "HEAD" {
				head = plumbing.ReferenceName(to)
			}
		}
		var wants []plumbing.Hash
		seen := map[plumbing.Hash]bool{}
		for _, h := range remoteRefs {
			if !seen[h] && !r.has(h) {
				seen[h] = true
				wants = append(wants, h)
			}
		}
		if headHash != nil && !seen[*headHash] && !r.has(*headHash) {
			wants = append(wants, *headHash)
		}
		if len(wants) == 0 {
			return nil
		}
		return r.fetch(ctx, sess, ar, wants, 0)
	})
	return remoteRefs, head, headHash, err
}

// setMirroredRefs points the cache's refs, and the origin remote-tracking
// refs of branches, at what the server has.
func (r *Remote) setMirroredRefs(remoteRefs map[plumbing.ReferenceName]plumbing.Hash) error {
	for name, h := range remoteRefs {
		if !r.has(h) {
			return &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("ref %s: object %s missing after fetch", name, h)}
		}
		if err := r.setRef(name, h); err != nil {
			return err
		}
		if branch, ok := strings.CutPrefix(string(name), "refs/heads/"); ok {
			if err := r.setRef(plumbing.NewRemoteReferenceName("origin", branch), h); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropStaleRefs drops refs the server no longer has.
func (r *Remote) dropStaleRefs(remoteRefs map[plumbing.ReferenceName]plumbing.Hash) error {
	iter, err := r.storage.IterReferences()
	if err != nil {
		return &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("list references: %w", err)}
	}
	var stale []plumbing.ReferenceName
	_ = iter.ForEach(func(ref *plumbing.Reference) error {
		name := ref.Name()
		switch {
		case name.IsBranch() || name.IsTag():
			if _, ok := remoteRefs[name]; !ok {
				stale = append(stale, name)
			}
		case strings.HasPrefix(string(name), "refs/remotes/origin/"):
			if _, ok := remoteRefs[plumbing.NewBranchReferenceName(strings.TrimPrefix(string(name), "refs/remotes/origin/"))]; !ok {
				stale = append(stale, name)
			}
		}
		return nil
	})
	for _, name := range stale {
		if err := r.storage.RemoveReference(name); err != nil {
			return fmt.Errorf("remove stale ref %s: %w", name, r.red.foreign(err))
		}
	}
	return nil
}
