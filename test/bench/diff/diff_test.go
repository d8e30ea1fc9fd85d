// Package diff benchmarks `bootsync diff` between two commits of a
// generated fleet (50 groups; one group's image changes), the way CI runs
// it on a pull request: both revisions read from the Git object store,
// every host rendered at both, per-host changes compared.
//
//	go test -run '^$' -bench . ./test/bench/diff
//	BOOTSYNC_BENCH_HOSTS=1000,10000,100000 go test -run '^$' -bench . -benchtime 1x ./test/bench/diff
//
// test/bench/diff.sh runs the real binary for wall time and peak RSS.
package diff

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/hostspec/fleetdiff"
	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

var tempRoot string

func TestMain(m *testing.M) {
	var err error
	if tempRoot, err = os.MkdirTemp("", "bootsync-bench-diff-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tempRoot)
	os.Exit(code)
}

// twoCommits generates a fleet of n hosts, commits it, then commits a
// change of one group's image.
func twoCommits(b *testing.B, n int) string {
	b.Helper()
	dir := filepath.Join(tempRoot, fmt.Sprintf("fleet-%d", n))
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	g, err := fleetgen.Generate(fleetgen.Config{Hosts: n, Groups: 50, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.WriteDir(dir); err != nil {
		b.Fatal(err)
	}
	if err := fleetgen.CommitGit(context.Background(), dir); err != nil {
		b.Fatal(err)
	}
	bumpOneGroup(b, dir)
	return dir
}

// bumpOneGroup changes the image of the first group that sets one.
func bumpOneGroup(b *testing.B, dir string) {
	b.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "groups"))
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, "groups", e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		s := string(data)
		if i := strings.Index(s, "image: "); i >= 0 {
			end := i + strings.IndexByte(s[i:], '\n')
			s = s[:end] + "-next" + s[end:]
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				b.Fatal(err)
			}
			git(b, dir, "commit", "-q", "-a", "-m", "bump "+e.Name())
			return
		}
	}
	b.Fatal("no group sets an image")
}

func git(b *testing.B, dir string, args ...string) {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com", "GIT_CONFIG_GLOBAL=/dev/null",
		// No background gc: it would repack and delete loose objects under the reader.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=gc.auto", "GIT_CONFIG_VALUE_0=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func sizes() []int {
	s := os.Getenv("BOOTSYNC_BENCH_HOSTS")
	if s == "" {
		return []int{1000, 10000}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// diff is what `bootsync diff --base HEAD~1 --head HEAD` does.
func diff(b *testing.B, dir string) *fleetdiff.Report {
	ctx := context.Background()
	local, err := gitsource.OpenLocal(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	open := func(rev string) (fleetdiff.Revision, error) {
		r, err := local.Revision(ctx, rev)
		if err != nil {
			return fleetdiff.Revision{}, err
		}
		repo, err := hostspec.Load(ctx, r.FS, hostspec.WithRevision(r.Commit))
		return fleetdiff.Revision{Name: r.Commit, Repo: repo, FS: r.FS}, err
	}
	var base, head fleetdiff.Revision
	var berr, herr error
	var wg sync.WaitGroup
	wg.Go(func() { base, berr = open("HEAD~1") })
	wg.Go(func() { head, herr = open("HEAD") })
	wg.Wait()
	if berr != nil || herr != nil {
		b.Fatal(berr, herr)
	}
	rep, err := fleetdiff.Compare(ctx, base, head, fleetdiff.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return rep
}

func BenchmarkDiff(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			dir := twoCommits(b, n)
			b.ResetTimer()
			var rep *fleetdiff.Report
			for b.Loop() {
				rep = diff(b, dir)
			}
			if rep.Summary.Total != n || rep.Summary.Changed == 0 {
				b.Fatalf("summary %+v: want %d hosts, some changed", rep.Summary, n)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
			b.ReportMetric(float64(rep.Summary.Changed), "changed-hosts")
		})
	}
}
