package gitsource

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
