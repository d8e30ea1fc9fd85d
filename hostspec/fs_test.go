package hostspec_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// These tests run against real file systems: os.DirFS over a directory and
// gitsource.TreeFS over a commit made with the git CLI. Both follow or
// expose symbolic links, which is what the checks are about.

func write(t *testing.T, root, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, root, name, target string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

const fleetHeader = "apiVersion: bootsync.dev/v1alpha1\nkind: Fleet\nspec:\n  image: registry.example.com/os/base:stable\n  etc:\n"

// repoKinds runs fn against the same tree as a directory and as a commit.
func repoKinds(t *testing.T, build func(t *testing.T, root string), fn func(t *testing.T, fsys fs.FS)) {
	t.Run("DirFS", func(t *testing.T) {
		fn(t, os.DirFS(builtRepo(t, build)))
	})
	t.Run("TreeFS", func(t *testing.T) {
		l, err := gitsource.OpenLocal(context.Background(), committedRepo(t, build))
		if err != nil {
			t.Fatal(err)
		}
		rev, err := l.Revision(context.Background(), "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		fn(t, rev.FS)
	})
	t.Run("WorkTree", func(t *testing.T) {
		wt, err := gitsource.OpenWorkTree(context.Background(), committedRepo(t, build))
		if err != nil {
			t.Fatal(err)
		}
		fn(t, wt)
	})
}

// resolveFrom loads the repository in fsys and resolves host, which both
// must do without a problem.
func resolveFrom(t *testing.T, fsys fs.FS, host string) *hostspec.HostSpec {
	t.Helper()
	r, err := hostspec.Load(context.Background(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Resolve(context.Background(), host, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// builtRepo returns a fresh directory with the tree build makes in it.
func builtRepo(t *testing.T, build func(t *testing.T, root string)) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	build(t, root)
	return root
}

// committedRepo is builtRepo with the whole tree committed by the git CLI.
func committedRepo(t *testing.T, build func(t *testing.T, root string)) string {
	t.Helper()
	root := builtRepo(t, build)
	gittest.Git(t, root, nil, "init", "-q", "-b", "main")
	gittest.Git(t, root, nil, "add", "-A")
	gittest.Git(t, root, nil, "commit", "-q", "-m", "fleet")
	return root
}

// TestSymlinksLeavingTheRepositoryAreRefused commits links that point out
// of the repository (absolute, through .., as a parent directory, inside a
// `from:` directory, as a host file) next to a secret outside it: every
// one must be refused, naming the file and field, and the secret must
// never end up in a spec.
func TestSymlinksLeavingTheRepositoryAreRefused(t *testing.T) {
	var outside string
	build := func(t *testing.T, root string) {
		outside = filepath.Join(filepath.Dir(root), "outside")
		write(t, filepath.Dir(root), "outside/secret.conf", "SECRET\n", 0o600)
		write(t, filepath.Dir(root), "outside/host.yaml", "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: web-09}\n", 0o644)
		write(t, root, "fleet.yaml", fleetHeader+
			"    - {path: /etc/a, from: files/abs}\n"+
			"    - {path: /etc/b, from: files/up}\n"+
			"    - {path: /etc/c, from: files/outdir/secret.conf}\n"+
			"    - {from: files/tree}\n", 0o644)
		symlink(t, root, "files/abs", filepath.Join(outside, "secret.conf"))
		symlink(t, root, "files/up", "../../outside/secret.conf")
		symlink(t, root, "files/outdir", "../../outside")
		write(t, root, "files/tree/ok.conf", "ok\n", 0o644)
		symlink(t, root, "files/tree/leak.conf", "../../../outside/secret.conf")
		symlink(t, root, "hosts/web-09.yaml", "../../outside/host.yaml")
	}
	repoKinds(t, build, func(t *testing.T, fsys fs.FS) {
		_, err := hostspec.Load(context.Background(), fsys)
		var list hostspec.ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("Load: %v, want an ErrorList", err)
		}
		want := []struct{ file, field, link string }{
			{"fleet.yaml", "spec.etc[0].from", "files/abs ->"},
			{"fleet.yaml", "spec.etc[1].from", "files/up -> ../../outside/secret.conf"},
			{"fleet.yaml", "spec.etc[2].from", "files/outdir -> ../../outside"},
			{"fleet.yaml", "spec.etc[3].from", "files/tree/leak.conf -> ../../../outside/secret.conf"},
			{"hosts/web-09.yaml", "", "hosts/web-09.yaml -> ../../outside/host.yaml"},
		}
		for _, w := range want {
			found := false
			for _, e := range list {
				if e.File == w.file && e.Field == w.field && strings.Contains(e.Msg, w.link) && strings.Contains(e.Msg, "symbolic link points outside the repository") {
					found = true
				}
			}
			if !found {
				t.Errorf("no refusal of %s in %s %s; got:\n%v", w.link, w.file, w.field, list)
			}
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("the secret leaked into the error:\n%v", err)
		}
		if len(list) != len(want) {
			t.Errorf("got %d problems, want %d:\n%v", len(list), len(want), list)
		}
	})
}

// TestSymlinksInsideTheRepositoryWork checks that links that stay inside the
// repository are followed: as a `from:` file, as a parent directory, and as
// a file inside a `from:` directory (which keeps the link's name).
func TestSymlinksInsideTheRepositoryWork(t *testing.T) {
	build := func(t *testing.T, root string) {
		write(t, root, "fleet.yaml", fleetHeader+
			"    - {path: /etc/a.conf, from: files/link.conf}\n"+
			"    - {path: /etc/b.conf, from: files/dirlink/real.conf}\n"+
			"    - {path: /etc/tree, from: files/tree}\n", 0o644)
		write(t, root, "files/shared/real.conf", "real\n", 0o644)
		write(t, root, "files/shared/run.sh", "#!/bin/sh\n", 0o755)
		symlink(t, root, "files/link.conf", "shared/real.conf")
		symlink(t, root, "files/dirlink", "shared")
		write(t, root, "files/tree/own.conf", "own\n", 0o644)
		symlink(t, root, "files/tree/alias.conf", "../shared/real.conf")
		symlink(t, root, "files/tree/run.sh", "../shared/run.sh")
	}
	repoKinds(t, build, func(t *testing.T, fsys fs.FS) {
		s := resolveFrom(t, fsys, "web-01")
		got := map[string]string{}
		modes := map[string]hostspec.FileMode{}
		for _, f := range s.Etc {
			got[f.Path] = string(f.Content)
			modes[f.Path] = f.Mode
		}
		want := map[string]string{"/etc/a.conf": "real\n", "/etc/b.conf": "real\n", "/etc/tree/alias.conf": "real\n", "/etc/tree/own.conf": "own\n", "/etc/tree/run.sh": "#!/bin/sh\n"}
		if len(got) != len(want) {
			t.Errorf("etc = %v, want %v", got, want)
		}
		for p, c := range want {
			if got[p] != c {
				t.Errorf("%s = %q, want %q", p, got[p], c)
			}
		}
		if modes["/etc/tree/run.sh"] != 0o755 || modes["/etc/tree/own.conf"] != 0o644 {
			t.Errorf("modes = %v, want the executable bit kept", modes)
		}
	})
}

// TestTraversalRefusedOnDisk checks `from:` paths that try to leave the
// repository without links, against a real directory whose parent holds a
// readable file.
func TestTraversalRefusedOnDisk(t *testing.T) {
	build := func(t *testing.T, root string) {
		write(t, filepath.Dir(root), "secret.conf", "SECRET\n", 0o644)
		write(t, root, "fleet.yaml", fleetHeader+
			"    - {path: /etc/a, from: ../secret.conf}\n"+
			"    - {path: /etc/b, from: "+filepath.Join(filepath.Dir(root), "secret.conf")+"}\n"+
			"    - {path: /etc/c, from: files/../../secret.conf}\n", 0o644)
	}
	repoKinds(t, build, func(t *testing.T, fsys fs.FS) {
		_, err := hostspec.Load(context.Background(), fsys)
		var list hostspec.ErrorList
		if !errors.As(err, &list) || len(list) != 3 {
			t.Fatalf("Load: %v, want 3 problems", err)
		}
		for i, e := range list {
			if e.File != "fleet.yaml" || e.Line != 6+i || !strings.HasSuffix(e.Field, ".from") {
				t.Errorf("problem %d = %v", i, e)
			}
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Error("secret leaked")
		}
	})
}

// TestExecutableBitFromGit checks the 0755 default for files committed as
// executable, read from a commit.
func TestExecutableBitFromGit(t *testing.T) {
	build := func(t *testing.T, root string) {
		write(t, root, "fleet.yaml", fleetHeader+"    - {from: files/common}\n    - {path: /etc/forced, from: files/common/bin/tool, mode: \"0700\"}\n", 0o644)
		write(t, root, "files/common/bin/tool", "#!/bin/sh\n", 0o755)
		write(t, root, "files/common/plain.conf", "x\n", 0o644)
	}
	repoKinds(t, build, func(t *testing.T, fsys fs.FS) {
		s := resolveFrom(t, fsys, "h")
		modes := map[string]hostspec.FileMode{}
		for _, f := range s.Etc {
			modes[f.Path] = f.Mode
		}
		if modes["/etc/bin/tool"] != 0o755 || modes["/etc/plain.conf"] != 0o644 || modes["/etc/forced"] != 0o700 {
			t.Errorf("modes = %v", modes)
		}
	})
}
