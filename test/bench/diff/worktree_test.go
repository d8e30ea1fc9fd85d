package diff

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
)

// BenchmarkLoadWorkingTree loads the head side of a CI diff (the working
// tree, --head's default) through gitsource.WorkTreeFS, which shows only
// what Git would commit, against os.DirFS, which it replaced and which
// showed .git and ignored files; and against the commit's TreeFS. The
// ratio is the cost of the working tree's rules.
//
//	go test -run '^$' -bench LoadWorkingTree ./test/bench/diff
func BenchmarkLoadWorkingTree(b *testing.B) {
	for _, n := range sizes() {
		dir := twoCommits(b, n)
		ctx := context.Background()
		views := []struct {
			name string
			open func() (fs.FS, error)
		}{
			{"dirfs", func() (fs.FS, error) { return os.DirFS(dir), nil }},
			{"worktree", func() (fs.FS, error) { return gitsource.OpenWorkTree(ctx, dir) }},
			{"commit", func() (fs.FS, error) {
				l, err := gitsource.OpenLocal(ctx, dir)
				if err != nil {
					return nil, err
				}
				r, err := l.Revision(ctx, "HEAD")
				if err != nil {
					return nil, err
				}
				return r.FS, nil
			}},
		}
		for _, v := range views {
			b.Run(fmt.Sprintf("hosts=%d/%s", n, v.name), func(b *testing.B) {
				for b.Loop() {
					fsys, err := v.open()
					if err != nil {
						b.Fatal(err)
					}
					repo, err := hostspec.Load(ctx, fsys)
					if err != nil {
						b.Fatal(err)
					}
					if got := len(repo.HostNames()); got != n {
						b.Fatalf("%d hosts, want %d", got, n)
					}
				}
			})
		}
	}
}
