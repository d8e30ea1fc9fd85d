package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// runBinary runs the bootsync executable that TestMain puts on PATH (this
// test binary, running main) and returns its exit status, stdout and
// stderr, as a user's shell would see them.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	bin, err := exec.LookPath("bootsync")
	if err != nil {
		t.Fatalf("bootsync is not on PATH (TestMain installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// A clean environment: no user cache directory, no git configuration.
	cmd.Env = append(gittest.Env(), "HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir(), "GORACE="+childGORACE())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run bootsync %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// The fleet repository served over smart HTTP (the real git http-backend)
// behind basic authentication, read with credentials from files: every
// read-only command works on it, the password never shows in any output or
// in the clone kept on disk, and a wrong password is a clear error.
func TestRepoURLOverHTTPWithBasicAuth(t *testing.T) {
	const user, password = "fleet-reader", "s3cret-Tok3n-9d1f"
	srv := gitserver.New(t, gitserver.WithBasicAuth(user, password))
	repo := gittest.NewRepo(t, srv.InitBare("ops.git"))
	first := repo.Commit("web-01", map[string]string{
		"fleet/fleet.yaml": `apiVersion: bootsync.dev/v1alpha1
kind: Fleet
spec:
  image: registry.example.com/os/base:stable
  etc:
    - path: /etc/motd
      content: "{{ .Host.Name }} is managed by bootsync\n"
      template: true
`,
		"fleet/hosts/web-01.yaml": "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: web-01}\n",
	})
	second := repo.Commit("web-02", map[string]string{
		"fleet/hosts/web-02.yaml": "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: web-02}\n",
	})
	repo.Push()

	secrets := t.TempDir()
	userFile := filepath.Join(secrets, "git-username")
	passwordFile := filepath.Join(secrets, "git-password")
	wrongFile := filepath.Join(secrets, "git-password-old")
	for path, content := range map[string]string{userFile: user + "\n", passwordFile: password + "\n", wrongFile: "expired-" + password + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	url := srv.URL("ops.git")
	remote := func(args ...string) []string {
		return append(args, "--repo", url, "--path", "fleet", "--cache-dir", cache,
			"--allow-http", "--git-username-file", userFile, "--git-password-file", passwordFile)
	}
	var outputs []string // every stdout and stderr, checked for the password at the end

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{remote("validate"), []string{"fleet repository is valid at " + second + ": 2 hosts, 0 groups\n"}},
		{remote("hosts"), []string{"\nweb-01 ", "\nweb-02 "}},
		{remote("render", "web-02", "--rev", second), []string{"revision: " + second + "\n", "web-02 is managed by bootsync"}},
		{remote("diff", "--base", first), []string{"1 changed", "+ web-02 (added)"}},
	} {
		code, stdout, stderr := runBinary(t, tc.args...)
		outputs = append(outputs, stdout, stderr)
		if code != 0 || stderr != "" {
			t.Fatalf("bootsync %s: exit %d\nstdout:\n%s\nstderr:\n%s", tc.args[0], code, stdout, stderr)
		}
		for _, want := range tc.want {
			if !strings.Contains(stdout, want) {
				t.Errorf("bootsync %s: stdout lacks %q:\n%s", tc.args[0], want, stdout)
			}
		}
	}

	// The reads went to the server (not to some other copy), and succeeded.
	var served int
	for _, r := range srv.Requests() {
		if r.Status == 200 {
			served++
		}
	}
	if served == 0 {
		t.Fatalf("no request was served: %v", srv.Requests())
	}

	// A wrong password (a rotated token, say): exit 1 with an error that
	// says the server refused the credentials, nothing on stdout, and no
	// password, old or new, anywhere.
	wrongCache := t.TempDir()
	args := []string{"validate", "--repo", url, "--path", "fleet", "--cache-dir", wrongCache,
		"--allow-http", "--git-username-file", userFile, "--git-password-file", wrongFile}
	code, stdout, stderr := runBinary(t, args...)
	outputs = append(outputs, stdout, stderr)
	if code != 1 || stdout != "" {
		t.Fatalf("wrong password: exit %d, want 1 and nothing on stdout\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, url) ||
		!strings.Contains(strings.ToLower(stderr), "authentication") {
		t.Errorf("wrong password: the error does not say that %s refused the credentials:\n%s", url, stderr)
	}

	// A password file that does not exist is named in the error.
	missing := filepath.Join(secrets, "no-such-file")
	code, stdout, stderr = runBinary(t, "validate", "--repo", url, "--cache-dir", wrongCache,
		"--allow-http", "--git-password-file", missing)
	outputs = append(outputs, stdout, stderr)
	if code != 1 || stdout != "" || !strings.Contains(stderr, missing) {
		t.Errorf("missing password file: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Credentials written into the URL itself are redacted from errors.
	inURL := srv.URLWithPassword("missing.git", user, password)
	code, stdout, stderr = runBinary(t, "validate", "--repo", inURL, "--cache-dir", wrongCache, "--allow-http")
	outputs = append(outputs, stdout, stderr)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "missing.git") {
		t.Errorf("credentials in a URL of a missing repository: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Credentials written into the URL of the real repository work too.
	urlCache := t.TempDir()
	code, stdout, stderr = runBinary(t, "hosts", "--repo", srv.URLWithPassword("ops.git", user, password), "--path", "fleet", "--cache-dir", urlCache, "--allow-http")
	outputs = append(outputs, stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "\nweb-02 ") {
		t.Errorf("credentials in the URL: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	for _, out := range outputs {
		if strings.Contains(out, password) {
			t.Errorf("the password shows in the output:\n%s", out)
		}
	}
	// Nor is it kept in the cached clones (their config, their refs).
	for _, dir := range []string{cache, wrongCache, urlCache} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte(password)) {
				t.Errorf("the password is stored in %s", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
