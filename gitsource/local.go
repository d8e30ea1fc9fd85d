package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Local is a Git repository on local disk (a working copy or a bare
// repository), read without touching its working tree.
type Local struct {
	dir  string
	repo *git.Repository
}

// Revision is one commit of a fleet repository and its tree.
type Revision struct {
	Commit string // full hex commit id
	FS     FS     // the commit's tree (*TreeFS for a Git repository)
}

// OpenLocal opens the Git repository that contains dir (searching parent
// directories, as git does).
func OpenLocal(ctx context.Context, dir string) (*Local, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", dir, err)
	}
	// Reopen the object store keeping pack files open: reading a revision
	// of a large fleet reads thousands of objects, and go-git otherwise
	// opens (and resolves the path of) the pack file for every one.
	if st, ok := repo.Storer.(*filesystem.Storage); ok {
		kept := filesystem.NewStorageWithOptions(st.Filesystem(), cache.NewObjectLRUDefault(),
			filesystem.Options{MaxOpenDescriptors: 16, LargeObjectThreshold: largeObject})
		var wt billy.Filesystem
		if w, err := repo.Worktree(); err == nil {
			wt = w.Filesystem
		}
		if repo, err = git.Open(kept, wt); err != nil {
			return nil, fmt.Errorf("open git repository %s: %w", dir, err)
		}
	}
	return &Local{dir: dir, repo: repo}, nil
}

// Repository is the go-git repository, for what needs its history (publish
// counts a commit's generation and checks ancestry).
func (l *Local) Repository() *git.Repository { return l.repo }

// Branch names the branch rev is (HEAD: the checked-out branch); "" for a
// commit id, a tag or any other expression.
func (l *Local) Branch(rev string) string {
	if rev == "HEAD" {
		if head, err := l.repo.Head(); err == nil && head.Name().IsBranch() {
			return head.Name().Short()
		}
		return ""
	}
	if _, err := l.repo.Reference(plumbing.NewBranchReferenceName(rev), false); err == nil {
		return rev
	}
	return ""
}

// OriginURL is the URL of the remote "origin" without credentials ("" when
// there is none).
func (l *Local) OriginURL() string {
	if r, err := l.repo.Remote("origin"); err == nil && len(r.Config().URLs) > 0 {
		return Redact(strings.TrimSpace(r.Config().URLs[0]))
	}
	return ""
}

// DirRevision is the directory the repository was opened at, as it was at
// rev: rev's tree narrowed to where the directory sits in the checkout, so
// that `--repo examples/fleet --rev HEAD~1` reads examples/fleet of that
// commit. A bare repository has no working tree: the whole tree.
func (l *Local) DirRevision(ctx context.Context, rev string) (*Revision, error) {
	r, err := l.Revision(ctx, rev)
	if err != nil {
		return nil, err
	}
	sub, err := l.DirInCheckout()
	if err != nil || sub == "." {
		return r, err
	}
	fsys, err := r.FS.Subtree(sub)
	if err != nil {
		return nil, fmt.Errorf("fleet repository %s at %s: %w", sub, rev, err)
	}
	return &Revision{Commit: r.Commit, FS: fsys}, nil
}

// DirInCheckout is where the directory the repository was opened at sits
// inside its checkout ("." at the root or in a bare repository).
func (l *Local) DirInCheckout() (string, error) {
	wt, err := l.repo.Worktree()
	if err != nil {
		return ".", nil // a bare repository has no working tree: the fleet is at its root
	}
	root, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return "", fmt.Errorf("resolve checkout root: %w", err)
	}
	real, err := filepath.EvalSymlinks(l.dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", l.dir, err)
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is not inside the Git checkout %s", l.dir, root)
	}
	return filepath.ToSlash(rel), nil
}

// Revision resolves rev (a branch, tag, commit id, or any expression go-git
// understands such as HEAD~1) and returns that commit's tree.
func (l *Local) Revision(ctx context.Context, rev string) (*Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	unlock := lockStore(l.repo.Storer)
	h, err := l.repo.ResolveRevision(plumbing.Revision(rev))
	unlock()
	if err != nil {
		return nil, fmt.Errorf("resolve revision %q in %s: %w", rev, l.dir, err)
	}
	return CommitRevision(l.repo, *h)
}

// CommitRevision returns the tree of commit id in repo.
func CommitRevision(repo *git.Repository, id plumbing.Hash) (*Revision, error) {
	unlock := lockStore(repo.Storer)
	c, err := repo.CommitObject(id)
	unlock()
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("commit %s: %w", id, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("read commit %s: %w", id, err)
	}
	return commitRevision(repo, c)
}

func commitRevision(repo *git.Repository, c *object.Commit) (*Revision, error) {
	tfs, err := NewTreeFS(repo.Storer, c)
	if err != nil {
		return nil, err
	}
	return &Revision{Commit: c.Hash.String(), FS: tfs}, nil
}
