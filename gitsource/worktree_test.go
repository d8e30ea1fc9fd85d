package gitsource

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

// listFiles walks fsys and returns every regular file and symbolic link,
// failing on any error.
func listFiles(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	slices.Sort(out)
	return out
}

// The working tree shows what committing it would: tracked files (with
// their uncommitted edits), untracked files Git does not ignore, nothing
// ignored, nothing deleted, and nothing of .git — so a link to .git/config
// is as missing as in the commit, and the CI runner's credentials (kept in
// .git/config by actions/checkout) never reach a diff.
func TestWorkTreeShowsWhatTheCommitWould(t *testing.T) {
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	gitRun(t, dir, "config", "http.https://github.com/.extraheader", "AUTHORIZATION: basic c2VjcmV0")
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "kind: Fleet\n")
	writeFile(t, filepath.Join(dir, ".gitignore"), "*.secret\nbuild/\n")
	writeFile(t, filepath.Join(dir, "files/keep.conf"), "keep\n")
	writeFile(t, filepath.Join(dir, "files/gone.conf"), "gone\n")
	writeFile(t, filepath.Join(dir, "files/forced.secret"), "tracked although ignored\n")
	if err := os.Symlink("../.git/config", filepath.Join(dir, "files/leak")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", filepath.Join(dir, "files/escape")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "add", "-f", "files/forced.secret")
	gitRun(t, dir, "commit", "-q", "-m", "one")
	// Uncommitted: an edit, a deletion, a new file, ignored files.
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "kind: Fleet # edited\n")
	if err := os.Remove(filepath.Join(dir, "files/gone.conf")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "files/new.conf"), "new\n")
	writeFile(t, filepath.Join(dir, "files/token.secret"), "ignored\n")
	writeFile(t, filepath.Join(dir, "build/out.conf"), "ignored dir\n")

	wt, err := OpenWorkTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".gitignore", "files/escape", "files/forced.secret", "files/keep.conf", "files/leak", "files/new.conf", "fleet.yaml"}
	if got := listFiles(t, wt); !slices.Equal(got, want) {
		t.Fatalf("working tree lists %q, want %q", got, want)
	}
	if got, err := fs.ReadFile(wt, "fleet.yaml"); err != nil || string(got) != "kind: Fleet # edited\n" {
		t.Fatalf("fleet.yaml = %q, %v; want the uncommitted edit", got, err)
	}
	for _, name := range []string{".git/config", ".git", "files/gone.conf", "files/token.secret", "build/out.conf", "build"} {
		if _, err := fs.Stat(wt, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want not exist", name, err)
		}
	}
	// The link into .git resolves to nothing, as it does in the commit.
	rev := revisionOf(t, dir, "HEAD")
	for _, fsys := range []fs.FS{wt, rev} {
		if _, err := fs.ReadFile(fsys, "files/leak"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%T: read files/leak (-> ../.git/config) = %v, want not exist", fsys, err)
		}
		if _, err := fs.ReadFile(fsys, "files/escape"); !errors.Is(err, ErrSymlinkEscapes) {
			t.Errorf("%T: read files/escape = %v, want ErrSymlinkEscapes", fsys, err)
		}
	}
	// A view of a sub-directory resolves links against that directory.
	writeFile(t, filepath.Join(dir, "fleet2/files/a.conf"), "a\n")
	writeFile(t, filepath.Join(dir, "fleet2/files/b/c.conf"), "c\n")
	sub, err := OpenWorkTree(context.Background(), filepath.Join(dir, "fleet2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "files/a.conf", "files/b/c.conf"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../fleet.yaml", filepath.Join(dir, "fleet2/files/up")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(sub, "files/up"); !errors.Is(err, ErrSymlinkEscapes) {
		t.Fatalf("sub-directory view: link out of it = %v, want ErrSymlinkEscapes", err)
	}
}

func revisionOf(t *testing.T, dir, rev string) *TreeFS {
	t.Helper()
	l, err := OpenLocal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Revision(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	return r.FS.(*TreeFS)
}

// Submodules are refused alike in the working tree (where they hold
// another repository's files and its .git) and at a commit (where they are
// a bare pointer): Lstat names ErrSubmodule, and listing the parent shows
// the entry so that walkers report it instead of silently skipping it.
func TestSubmodulesAreRefusedInWorkTreeAndCommit(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	gitRun(t, base, "init", "-q", "-b", "main", "src")
	writeFile(t, filepath.Join(src, "web-01.yaml"), "kind: Host\n")
	gitRun(t, src, "add", "-A")
	gitRun(t, src, "commit", "-q", "-m", "s")
	dir := filepath.Join(base, "fleet")
	gitRun(t, base, "init", "-q", "-b", "main", "fleet")
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "kind: Fleet\n")
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../src", "hosts")
	gitRun(t, dir, "commit", "-q", "-m", "x")
	// A nested repository that is not (yet) a submodule counts the same.
	gitRun(t, dir, "init", "-q", "-b", "main", "files/nested")
	writeFile(t, filepath.Join(dir, "files/nested/a.conf"), "a\n")

	wt, err := OpenWorkTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rev := revisionOf(t, dir, "HEAD")
	for _, c := range []struct {
		fsys fs.FS
		path string
	}{{wt, "hosts"}, {wt, "hosts/web-01.yaml"}, {wt, "files/nested"}, {wt, "files/nested/a.conf"}, {rev, "hosts"}, {rev, "hosts/web-01.yaml"}} {
		if _, err := fs.Lstat(c.fsys, c.path); !errors.Is(err, ErrSubmodule) {
			t.Errorf("%T: Lstat(%s) = %v, want ErrSubmodule", c.fsys, c.path, err)
		}
	}
	for _, fsys := range []fs.FS{wt, rev} {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(entries, func(e fs.DirEntry) bool { return e.Name() == "hosts" })
		if i < 0 || entries[i].Type() != fs.ModeIrregular {
			t.Fatalf("%T: ReadDir(.) = %v: want hosts listed as an irregular entry", fsys, entries)
		}
		if _, err := entries[i].Info(); !errors.Is(err, ErrSubmodule) {
			t.Fatalf("%T: Info of hosts = %v, want ErrSubmodule", fsys, err)
		}
	}
}

// A mount point (here a bind mount of a directory outside the repository)
// is not part of the repository, whatever it shows.
func TestWorkTreeRefusesMountPoints(t *testing.T) {
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "kind: Fleet\n")
	writeFile(t, filepath.Join(dir, "files/mnt/.keep"), "")
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "one")
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.conf"), "SECRET\n")
	target := filepath.Join(dir, "files/mnt")
	if err := unix.Mount(outside, target, "", unix.MS_BIND, ""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bind mount (needs root): %v", err)
		}
		t.Skipf("bind mount needs root: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })

	wt, err := OpenWorkTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"files/mnt", "files/mnt/secret.conf"} {
		if _, err := fs.ReadFile(wt, p); !errors.Is(err, ErrOtherFileSystem) {
			t.Errorf("read %s = %v, want ErrOtherFileSystem", p, err)
		}
	}
}

// A directory outside any checkout is read whole, with the same rules for
// links and nested repositories.
func TestWorkTreeOfAPlainDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "fleet.yaml"), "kind: Fleet\n")
	writeFile(t, filepath.Join(dir, "files/a.conf"), "a\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "files/abs")); err != nil {
		t.Fatal(err)
	}
	wt, err := OpenWorkTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := listFiles(t, wt), []string{"files/a.conf", "files/abs", "fleet.yaml"}; !slices.Equal(got, want) {
		t.Fatalf("lists %q, want %q", got, want)
	}
	if _, err := fs.ReadFile(wt, "files/abs"); !errors.Is(err, ErrSymlinkEscapes) {
		t.Fatalf("absolute link = %v, want ErrSymlinkEscapes", err)
	}
}
