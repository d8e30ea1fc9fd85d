package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
)

// gitRun runs the real git CLI in dir with a fixed identity.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTreeFSReadsCommitWithoutWorktree(t *testing.T) {
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "kind: Fleet\n")
	writeFile(t, filepath.Join(dir, "files/common/chrony.conf"), "pool ntp\n")
	writeFile(t, filepath.Join(dir, "files/common/sub/a.conf"), "a\n")
	writeFile(t, filepath.Join(dir, "bin/run.sh"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(dir, "bin/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("common/chrony.conf", filepath.Join(dir, "files/link.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(dir, "files/escape")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "one")
	// Change the working tree after the commit: the commit's tree must not see it.
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "changed\n")

	l, err := OpenLocal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := l.Revision(context.Background(), "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.Commit) != 40 {
		t.Fatalf("commit id %q", rev.Commit)
	}
	got, err := fs.ReadFile(rev.FS, "fleet.yaml")
	if err != nil || string(got) != "kind: Fleet\n" {
		t.Fatalf("fleet.yaml = %q, %v; want the committed content", got, err)
	}
	if got, err := fs.ReadFile(rev.FS, "files/link.conf"); err != nil || string(got) != "pool ntp\n" {
		t.Fatalf("in-tree symlink: %q, %v", got, err)
	}
	if _, err := fs.ReadFile(rev.FS, "files/escape"); !errors.Is(err, ErrSymlinkEscapes) {
		t.Fatalf("escaping symlink: err = %v, want ErrSymlinkEscapes", err)
	}
	fi, err := fs.Lstat(rev.FS, "files/link.conf")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat link: %v %v", fi, err)
	}
	if target, err := fs.ReadLink(rev.FS, "files/link.conf"); err != nil || target != "common/chrony.conf" {
		t.Fatalf("ReadLink = %q, %v", target, err)
	}
	if fi, err := fs.Stat(rev.FS, "bin/run.sh"); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("executable mode: %v %v", fi, err)
	}
	if _, err := fs.ReadFile(rev.FS, "missing.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	// fstest.TestFS checks the fs.FS contract; skip the escaping link, which
	// is deliberately unreadable.
	sub, err := fs.Sub(rev.FS, "files/common")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "chrony.conf", "sub/a.conf"); err != nil {
		t.Fatal(err)
	}
}

// Readers in many goroutines (hostspec decodes files in parallel; diff loads
// two revisions at once) share one object store.
func TestTreeFSConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	for i := range 300 {
		writeFile(t, filepath.Join(dir, "hosts", fmt.Sprintf("h%03d.yaml", i)), fmt.Sprintf("name: h%03d\n", i))
	}
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "one")
	writeFile(t, filepath.Join(dir, "hosts", "h000.yaml"), "changed\n")
	gitRun(t, dir, "commit", "-q", "-am", "two")
	gitRun(t, dir, "gc", "-q") // packed objects, as in a clone
	l, err := OpenLocal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*300)
	for _, rev := range []string{"HEAD", "HEAD~1"} {
		r, err := l.Revision(context.Background(), rev)
		if err != nil {
			t.Fatal(err)
		}
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < 300; i += 4 {
					name := fmt.Sprintf("hosts/h%03d.yaml", i)
					if _, err := fs.ReadFile(r.FS, name); err != nil {
						errs <- fmt.Errorf("%s %s: %w", rev, name, err)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
