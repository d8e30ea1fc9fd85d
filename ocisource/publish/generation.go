package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrShallow is a repository without its full history: a commit's
// generation and the fast-forward check need all of it.
var ErrShallow = errors.New("the repository is a shallow clone: publishing needs the full history (git fetch --unshallow; in GitHub Actions, actions/checkout with fetch-depth: 0)")

// Generation returns commit's generation: 1 for a commit without parents,
// else one more than the highest of its parents' — the length of its
// longest parent chain (git's topological level, as in commit-graph). A
// descendant always has a higher generation than its ancestors, so hosts
// can refuse to go back by comparing two numbers.
func Generation(ctx context.Context, repo *git.Repository, commit plumbing.Hash) (int64, error) {
	if shallow, err := repo.Storer.Shallow(); err != nil {
		return 0, fmt.Errorf("read shallow commits: %w", err)
	} else if len(shallow) > 0 {
		return 0, ErrShallow
	}
	gen := map[plumbing.Hash]int64{}
	// An explicit stack: histories are deep, goroutine stacks are not.
	type frame struct {
		c       *object.Commit
		visited bool
	}
	root, err := object.GetCommit(repo.Storer, commit)
	if err != nil {
		return 0, fmt.Errorf("read commit %s: %w", commit, err)
	}
	stack := []frame{{c: root}}
	for n := 0; len(stack) > 0; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		top := &stack[len(stack)-1]
		if _, done := gen[top.c.Hash]; done {
			stack = stack[:len(stack)-1]
			continue
		}
		if top.visited {
			g := int64(0)
			for _, p := range top.c.ParentHashes {
				g = max(g, gen[p])
			}
			gen[top.c.Hash] = g + 1
			stack = stack[:len(stack)-1]
			continue
		}
		top.visited = true
		c := top.c
		for _, p := range c.ParentHashes {
			if _, done := gen[p]; done {
				continue
			}
			pc, err := object.GetCommit(repo.Storer, p)
			if err != nil {
				return 0, fmt.Errorf("commit %s: parent %s: %w (is the clone shallow or partial? publishing needs the full history)", c.Hash, p, err)
			}
			stack = append(stack, frame{c: pc})
		}
	}
	return gen[commit], nil
}
