package gitsource_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

func revisionFile(t *testing.T, l *gitsource.Local, rev, name string) string {
	t.Helper()
	r, err := l.Revision(context.Background(), rev)
	if err != nil {
		t.Fatalf("Revision(%s): %v", rev, err)
	}
	b, err := fs.ReadFile(r.FS, name)
	if err != nil {
		t.Fatalf("read %s at %s: %v", name, rev, err)
	}
	return string(b)
}

// `bootsync diff --repo URL` needs two revisions of a remote repository.
func TestCloneForReadMirrorsBranchesAndTags(t *testing.T) {
	f := newFleet(t, gitserver.WithBasicAuth("ci", "ci-token-123456"))
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	userFile := filepath.Join(dir, "user")
	writeFile(t, userFile, "ci\n")
	writeFile(t, passFile, "ci-token-123456\n")
	c1 := f.push(t, "one", map[string]string{"fleet.yaml": "v1\n"})
	f.repo.Tag("v1", true)
	c2 := f.push(t, "two", map[string]string{"fleet.yaml": "v2\n"})
	gittest.Git(t, f.repo.Dir, nil, "push", "-q", "origin", c1+":refs/heads/feature")

	cacheDir := t.TempDir()
	opts := []gitsource.Option{gitsource.WithAllowHTTP(), gitsource.WithBasicAuthFiles(userFile, passFile)}
	l, err := gitsource.CloneForRead(context.Background(), f.url, cacheDir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[string]string{
		"main": "v2\n", "origin/main": "v2\n", "HEAD": "v2\n", "main~1": "v1\n",
		"v1": "v1\n", "feature": "v1\n", c2: "v2\n", c1[:12]: "v1\n",
	} {
		if got := revisionFile(t, l, rev, "fleet.yaml"); got != want {
			t.Errorf("fleet.yaml at %s = %q, want %q", rev, got, want)
		}
	}

	// A second call updates the mirror incrementally and drops deleted branches.
	c3 := f.push(t, "three", map[string]string{"fleet.yaml": "v3\n"})
	gittest.Git(t, f.repo.Dir, nil, "push", "-q", "origin", ":refs/heads/feature")
	f.srv.Reset()
	l, err = gitsource.CloneForRead(context.Background(), f.url, cacheDir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if got := revisionFile(t, l, "main", "fleet.yaml"); got != "v3\n" {
		t.Fatalf("main after update = %q", got)
	}
	if rev, err := l.Revision(context.Background(), "main"); err != nil || rev.Commit != c3 {
		t.Fatalf("main = %v, %v; want %s", rev, err, c3)
	}
	if _, err := l.Revision(context.Background(), "feature"); err == nil {
		t.Fatal("the deleted branch feature still resolves")
	}
	if n := f.srv.CountPath("/fleet.git/git-upload-pack"); n != 1 {
		t.Fatalf("the update made %d fetches, want 1", n)
	}

	// A corrupt mirror is cloned again.
	for _, p := range glob(t, filepath.Join(cacheDir, "*-mirror"), "objects/pack/*.pack") {
		if err := os.Truncate(p, 100); err != nil {
			t.Fatal(err)
		}
	}
	l, err = gitsource.CloneForRead(context.Background(), f.url, cacheDir, opts...)
	if err != nil {
		t.Fatalf("CloneForRead of a corrupt mirror: %v", err)
	}
	if got := revisionFile(t, l, "main~2", "fleet.yaml"); got != "v1\n" {
		t.Fatalf("main~2 after recovery = %q", got)
	}

	// Trust options do not apply to a mirror.
	if _, err := gitsource.CloneForRead(context.Background(), f.url, cacheDir, append(opts, gitsource.WithRef("main"))...); err == nil {
		t.Fatal("CloneForRead accepted WithRef")
	}
	// Errors name the repository without credentials.
	_, err = gitsource.CloneForRead(context.Background(), f.srv.URLWithPassword("missing.git", "ci", "ci-token-123456"), cacheDir, gitsource.WithAllowHTTP())
	var nf *gitsource.NotFoundError
	if !errors.As(err, &nf) || strings.Contains(err.Error(), "ci-token-123456") {
		t.Fatalf("CloneForRead of a missing repository: %v", err)
	}
}
