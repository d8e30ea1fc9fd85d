package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

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

// Repository exposes the underlying go-git repository.
func (l *Local) Repository() *git.Repository { return l.repo }

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
