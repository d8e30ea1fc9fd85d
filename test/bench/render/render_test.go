// Package render benchmarks what `bootsync render` and the agent do with a
// real fleet repository on disk: Load a generated repository from a
// directory (os.DirFS) or from a Git commit (gitsource.TreeFS), then
// resolve and render every host. The in-memory figures are in the hostspec
// package's own benchmarks (BenchmarkResolveAll, BenchmarkLoad).
//
//	go test -run '^$' -bench . -cpu 1 ./test/bench/render
package render

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

var (
	reposMu sync.Mutex
	repos   = map[int]string{} // hosts -> directory with a generated, committed repository
)

// generatedRepo writes (once per size and process) a fleet of n hosts and
// 50 groups under a temporary directory and commits it with git.
func generatedRepo(b *testing.B, n int) string {
	b.Helper()
	reposMu.Lock()
	defer reposMu.Unlock()
	if dir, ok := repos[n]; ok {
		return dir
	}
	g, err := fleetgen.Generate(fleetgen.Config{Hosts: n, Groups: 50, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	// Not b.TempDir: the repository is shared by sub-benchmarks and runs
	// of the same size; TestMain removes it.
	dir := filepath.Join(tempRoot, fmt.Sprintf("fleet-%d", n))
	if err := g.WriteDir(dir); err != nil {
		b.Fatal(err)
	}
	if err := fleetgen.CommitGit(context.Background(), dir); err != nil {
		b.Fatal(err)
	}
	repos[n] = dir
	return dir
}

var tempRoot string

func TestMain(m *testing.M) {
	var err error
	tempRoot, err = os.MkdirTemp("", "bootsync-bench-render-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tempRoot)
	os.Exit(code)
}

func loadAndRenderAll(b *testing.B, fsys fs.FS) int {
	ctx := context.Background()
	repo, err := hostspec.Load(ctx, fsys)
	if err != nil {
		b.Fatal(err)
	}
	names := repo.HostNames()
	for _, h := range names {
		if _, err := repo.Resolve(ctx, h, nil); err != nil {
			b.Fatal(err)
		}
	}
	return len(names)
}

// BenchmarkDirFS loads a checked-out repository and renders every host.
func BenchmarkDirFS(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			fsys := os.DirFS(generatedRepo(b, n))
			b.ResetTimer()
			hosts := 0
			for b.Loop() {
				hosts += loadAndRenderAll(b, fsys)
			}
			b.ReportMetric(float64(hosts)/b.Elapsed().Seconds(), "hosts/s")
		})
	}
}

// BenchmarkTreeFS loads the repository's commit straight from the object
// store, as the agent does, and renders every host.
func BenchmarkTreeFS(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			l, err := gitsource.OpenLocal(context.Background(), generatedRepo(b, n))
			if err != nil {
				b.Fatal(err)
			}
			rev, err := l.Revision(context.Background(), "HEAD")
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			hosts := 0
			for b.Loop() {
				hosts += loadAndRenderAll(b, rev.FS)
			}
			b.ReportMetric(float64(hosts)/b.Elapsed().Seconds(), "hosts/s")
		})
	}
}
