// Package gitbench measures gitsource (go-git) against the git CLI on the
// same local smart-HTTP server (git http-backend), in one run:
//
//	(a) a poll with no change            vs  git ls-remote
//	(b) fetching 1 new commit            vs  git fetch
//	(c) the first clone (depth 1)        vs  git clone --depth 1
//
// plus the peak RSS of each first clone, measured in child processes. The
// repository (10,000 commits, 20,000 files) is generated once with
// git fast-import and cached under test/bench/out/. Run test/bench/git.sh for
// the ratios.
package gitbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

const (
	benchCommits = 10000
	benchFiles   = 20000
	// repoVersion names the generated repository; change it when the
	// generator changes so the cache is rebuilt.
	repoVersion = "v1"
	// childEnv makes the test binary run one first clone and exit, so its
	// peak RSS can be read from the child's rusage.
	childEnv = "GITBENCH_CHILD_CLONE"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		os.Exit(childClone(url, os.Getenv(childEnv+"_DIR"), os.Getenv(childEnv+"_LAST")))
	}
	os.Exit(m.Run())
}

// childClone is the go-git first clone, run in a child process.
func childClone(url, dir, lastApplied string) int {
	r, err := gitsource.New(url, gitsource.WithCacheDir(dir), gitsource.WithAllowHTTP(), gitsource.WithRef("main"))
	if err == nil {
		_, err = r.Poll(context.Background(), lastApplied)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

var (
	baseOnce sync.Once
	baseDir  string
	baseErr  error
)

// baseRepo returns the generated bare repository, generating it on first use.
func baseRepo(b *testing.B) string {
	baseOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		out := filepath.Join(filepath.Dir(file), "..", "out", "gitbench")
		baseDir = filepath.Join(out, "fleet-"+repoVersion+".git")
		if _, err := os.Stat(filepath.Join(baseDir, "bench-complete")); err == nil {
			return
		}
		baseErr = generate(out, baseDir)
	})
	if baseErr != nil {
		b.Fatalf("generate benchmark repository: %v", baseErr)
	}
	return baseDir
}

// generate builds the repository with git fast-import: one commit adding
// benchFiles host files, then commits that each change one file.
func generate(out, dir string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(out, "gen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	run := func(stdin *bytes.Buffer, args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = tmp
		cmd.Env = gittest.Env()
		if stdin != nil {
			cmd.Stdin = stdin
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run(nil, "init", "-q", "--bare", "-b", "main", "."); err != nil {
		return err
	}
	var stream bytes.Buffer
	w := bufio.NewWriter(&stream)
	const t0 = 1700000000
	for i := 1; i <= benchCommits; i++ {
		msg := fmt.Sprintf("change %d", i)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\n", t0+i, len(msg), msg)
		if i == 1 {
			for f := 0; f < benchFiles; f++ {
				writeFile(w, f, 0)
			}
			continue
		}
		writeFile(w, (i*7919)%benchFiles, i)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := run(&stream, "fast-import", "--quiet"); err != nil {
		return err
	}
	// As a server would keep it: one pack with deltas and bitmaps.
	if err := run(nil, "gc", "-q"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "bench-complete"), nil, 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

// writeFile emits one fast-import inline file modification.
func writeFile(w *bufio.Writer, f, rev int) {
	content := fmt.Sprintf("kind: Host\nmetadata:\n  name: host-%05d\n  labels: {site: site-%03d, rack: r%02d}\nspec:\n  vars: {ip: 10.%d.%d.%d, revision: %d}\n  image: registry.example.com/os/base:stable\n",
		f, f/100, f%40, f/65536, (f/256)%256, f%256, rev)
	fmt.Fprintf(w, "M 100644 inline sites/site-%03d/host-%05d.yaml\ndata %d\n%s\n", f/100, f, len(content), content)
}

// server serves a private copy of the generated repository.
func server(b *testing.B) (*gitserver.Server, string) {
	b.Helper()
	root := b.TempDir()
	cmd := exec.Command("git", "clone", "-q", "--bare", "--local", baseRepo(b), filepath.Join(root, "fleet.git"))
	cmd.Env = gittest.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("copy repository: %v\n%s", err, out)
	}
	srv := gitserver.New(b, gitserver.WithRoot(root))
	return srv, filepath.Join(root, "fleet.git")
}

// addCommit appends one commit changing one file to the served repository.
func addCommit(b *testing.B, bare string, n int) {
	b.Helper()
	var stream bytes.Buffer
	w := bufio.NewWriter(&stream)
	if n < 0 {
		n = 1000000 - n
	}
	msg := fmt.Sprintf("bench change %d", n)
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\nfrom refs/heads/main^0\n", 1800000000+n, len(msg), msg)
	writeFile(w, (n*104729)%benchFiles, benchCommits+n)
	_ = w.Flush()
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = bare
	cmd.Env = gittest.Env()
	cmd.Stdin = &stream
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("add commit: %v\n%s", err, out)
	}
}

func gitCLI(b *testing.B, dir string, args ...string) string {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gittest.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRemote(b *testing.B, url, cacheDir string) *gitsource.Remote {
	b.Helper()
	r, err := gitsource.New(url, gitsource.WithCacheDir(cacheDir), gitsource.WithAllowHTTP(), gitsource.WithRef("main"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r
}

func mustPoll(b *testing.B, r *gitsource.Remote, last string) *gitsource.PollResult {
	b.Helper()
	res, err := r.Poll(context.Background(), last)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// (a) A poll that finds nothing new, against git ls-remote of the branch.
func BenchmarkNoChangePoll(b *testing.B) {
	srv, _ := server(b)
	url := srv.URL("fleet.git")
	b.Run("gogit", func(b *testing.B) {
		r := newRemote(b, url, b.TempDir())
		tip := mustPoll(b, r, "").Commit
		srv.Reset()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if res := mustPoll(b, r, tip); res.Changed || res.Fetched {
				b.Fatalf("poll changed: %+v", res)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(srv.Count())/float64(b.N), "requests/op")
	})
	b.Run("gitcli", func(b *testing.B) {
		dir := b.TempDir()
		srv.Reset()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			gitCLI(b, dir, "ls-remote", url, "refs/heads/main")
		}
		b.StopTimer()
		b.ReportMetric(float64(srv.Count())/float64(b.N), "requests/op")
	})
}

// (b) Fetching one new commit into a cache that has the 10,000 commits,
// against git fetch in a full bare clone. The agent's cache holds the full
// history from the first change on (a shallow first clone is replaced then),
// so that is the state measured.
func BenchmarkFetchOneCommit(b *testing.B) {
	b.Run("gogit", func(b *testing.B) {
		srv, bare := server(b)
		r := newRemote(b, srv.URL("fleet.git"), b.TempDir())
		last := mustPoll(b, r, "").Commit // shallow first clone
		addCommit(b, bare, -1)
		last = mustPoll(b, r, last).Commit // first change: full clone
		if _, err := os.Stat(filepath.Join(r.CacheDir(), "shallow")); err == nil {
			b.Fatal("the cache is still shallow")
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			addCommit(b, bare, i)
			b.StartTimer()
			res := mustPoll(b, r, last)
			if !res.Changed || !res.Fetched {
				b.Fatalf("poll did not fetch: %+v", res)
			}
			last = res.Commit
		}
	})
	b.Run("gitcli", func(b *testing.B) {
		srv, bare := server(b)
		clone := filepath.Join(b.TempDir(), "clone.git")
		gitCLI(b, "", "clone", "-q", "--bare", srv.URL("fleet.git"), clone)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			addCommit(b, bare, i)
			b.StartTimer()
			gitCLI(b, clone, "fetch", "-q", "origin", "+refs/heads/main:refs/heads/main")
		}
	})
}

// (c) The first clone, against git clone --depth 1 (bare: neither writes a
// working tree). Each also runs once in a child process to measure its
// peak RSS.
func BenchmarkFirstClone(b *testing.B) {
	srv, bare := server(b)
	url := srv.URL("fleet.git")
	b.Run("gogit", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			r := newRemote(b, url, dir)
			mustPoll(b, r, "")
			b.StopTimer()
			_ = r.Close()
			b.StartTimer()
		}
		b.StopTimer()
		self, err := os.Executable()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), childEnv+"="+url, childEnv+"_DIR="+b.TempDir())
		b.ReportMetric(peakRSS(b, cmd), "peak-RSS-MB")
	})
	// The full clone the cache becomes at the first change, against a full
	// git clone.
	b.Run("gogit-full", func(b *testing.B) {
		first := gitCLI(b, bare, "rev-list", "--max-parents=0", "main")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			r := newRemote(b, url, dir)
			mustPoll(b, r, first)
			b.StopTimer()
			_ = r.Close()
			b.StartTimer()
		}
		b.StopTimer()
		self, err := os.Executable()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), childEnv+"="+url, childEnv+"_DIR="+b.TempDir(), childEnv+"_LAST="+first)
		b.ReportMetric(peakRSS(b, cmd), "peak-RSS-MB")
	})
	b.Run("gitcli-full", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "clone.git")
			b.StartTimer()
			gitCLI(b, "", "clone", "-q", "--bare", url, dir)
		}
		b.StopTimer()
		cmd := exec.Command("git", "clone", "-q", "--bare", url, filepath.Join(b.TempDir(), "clone.git"))
		cmd.Env = gittest.Env()
		b.ReportMetric(peakRSS(b, cmd), "peak-RSS-MB")
	})
	b.Run("gitcli", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "clone.git")
			b.StartTimer()
			gitCLI(b, "", "clone", "-q", "--bare", "--depth", "1", url, dir)
		}
		b.StopTimer()
		cmd := exec.Command("git", "clone", "-q", "--bare", "--depth", "1", url, filepath.Join(b.TempDir(), "clone.git"))
		cmd.Env = gittest.Env()
		b.ReportMetric(peakRSS(b, cmd), "peak-RSS-MB")
	})
}

// peakRSS runs cmd under GNU time and returns the largest resident set of
// it and of the children it waited for (git clone runs git-remote-http and
// index-pack), in MiB. Reading the rusage of a child of this process would
// be wrong: Go starts children with vfork, and Linux then counts the parent's
// resident set (this benchmark's, hundreds of MB) as the child's peak.
func peakRSS(b *testing.B, cmd *exec.Cmd) float64 {
	b.Helper()
	const gnuTime = "/usr/bin/time"
	if _, err := os.Stat(gnuTime); err != nil {
		b.Fatalf("measuring peak RSS needs GNU time (Debian package time): %v", err)
	}
	report := filepath.Join(b.TempDir(), "rss")
	timed := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", report, cmd.Path}, cmd.Args[1:]...)...)
	timed.Env = cmd.Env
	if out, err := timed.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Fields(string(data))
	if len(lines) == 0 {
		b.Fatalf("no RSS in %q", data)
	}
	var kib float64
	if _, err := fmt.Sscan(lines[len(lines)-1], &kib); err != nil {
		b.Fatalf("parse RSS %q: %v", data, err)
	}
	return kib / 1024
}
