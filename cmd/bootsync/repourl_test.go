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
	f := newBasicAuthFleet(t)

	cache := t.TempDir()
	f.checkReads(cache)

	// A wrong password (a rotated token, say): exit 1 with an error that
	// says the server refused the credentials, nothing on stdout, and no
	// password, old or new, anywhere.
	wrongCache := t.TempDir()
	code, stdout, stderr := f.run("validate", "--repo", f.url, "--path", "fleet", "--cache-dir", wrongCache,
		"--allow-http", "--git-username-file", f.userFile, "--git-password-file", f.wrongFile)
	if code != 1 || stdout != "" {
		t.Fatalf("wrong password: exit %d, want 1 and nothing on stdout\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, f.url) ||
		!strings.Contains(strings.ToLower(stderr), "authentication") {
		t.Errorf("wrong password: the error does not say that %s refused the credentials:\n%s", f.url, stderr)
	}

	// A password file that does not exist is named in the error.
	missing := filepath.Join(f.secrets, "no-such-file")
	code, stdout, stderr = f.run("validate", "--repo", f.url, "--cache-dir", wrongCache,
		"--allow-http", "--git-password-file", missing)
	if code != 1 || stdout != "" || !strings.Contains(stderr, missing) {
		t.Errorf("missing password file: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Credentials written into the URL itself are redacted from errors.
	inURL := f.srv.URLWithPassword("missing.git", basicAuthUser, basicAuthPassword)
	code, stdout, stderr = f.run("validate", "--repo", inURL, "--cache-dir", wrongCache, "--allow-http")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "missing.git") {
		t.Errorf("credentials in a URL of a missing repository: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Credentials written into the URL of the real repository work too.
	urlCache := t.TempDir()
	code, stdout, stderr = f.run("hosts", "--repo", f.srv.URLWithPassword("ops.git", basicAuthUser, basicAuthPassword), "--path", "fleet", "--cache-dir", urlCache, "--allow-http")
	if code != 0 || !strings.Contains(stdout, "\nweb-02 ") {
		t.Errorf("credentials in the URL: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	f.checkPasswordNowhere(cache, wrongCache, urlCache)
}

const basicAuthUser, basicAuthPassword = "fleet-reader", "s3cret-Tok3n-9d1f"

// basicAuthFleet is a fleet repository of two commits served over HTTP
// behind basic auth, the files that hold the credentials (and an outdated
// password), and every output bootsync gave, to search for the password.
type basicAuthFleet struct {
	t                                 *testing.T
	srv                               *gitserver.Server
	url                               string
	first, second                     string // the commits
	secrets                           string // the directory of the credential files
	userFile, passwordFile, wrongFile string
	outputs                           []string
}

func newBasicAuthFleet(t *testing.T) *basicAuthFleet {
	f := &basicAuthFleet{t: t, srv: gitserver.New(t, gitserver.WithBasicAuth(basicAuthUser, basicAuthPassword))}
	repo := gittest.NewRepo(t, f.srv.InitBare("ops.git"))
	f.first = repo.Commit("web-01", map[string]string{
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
	f.second = repo.Commit("web-02", map[string]string{
		"fleet/hosts/web-02.yaml": "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: web-02}\n",
	})
	repo.Push()
	f.url = f.srv.URL("ops.git")

	f.secrets = t.TempDir()
	f.userFile = filepath.Join(f.secrets, "git-username")
	f.passwordFile = filepath.Join(f.secrets, "git-password")
	f.wrongFile = filepath.Join(f.secrets, "git-password-old")
	for path, content := range map[string]string{f.userFile: basicAuthUser + "\n", f.passwordFile: basicAuthPassword + "\n", f.wrongFile: "expired-" + basicAuthPassword + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// run runs bootsync and keeps what it printed.
func (f *basicAuthFleet) run(args ...string) (code int, stdout, stderr string) {
	code, stdout, stderr = runBinary(f.t, args...)
	f.outputs = append(f.outputs, stdout, stderr)
	return code, stdout, stderr
}

// checkReads reads the fleet with the right credentials, cloning into
// cache, and checks the server answered.
func (f *basicAuthFleet) checkReads(cache string) {
	t := f.t
	remote := func(args ...string) []string {
		return append(args, "--repo", f.url, "--path", "fleet", "--cache-dir", cache,
			"--allow-http", "--git-username-file", f.userFile, "--git-password-file", f.passwordFile)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{remote("validate"), []string{"fleet repository is valid at " + f.second + ": 2 hosts, 0 groups\n"}},
		{remote("hosts"), []string{"\nweb-01 ", "\nweb-02 "}},
		{remote("render", "web-02", "--rev", f.second), []string{"revision: " + f.second + "\n", "web-02 is managed by bootsync"}},
		{remote("diff", "--base", f.first), []string{"1 changed", "+ web-02 (added)"}},
	} {
		code, stdout, stderr := f.run(tc.args...)
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
	for _, r := range f.srv.Requests() {
		if r.Status == 200 {
			served++
		}
	}
	if served == 0 {
		t.Fatalf("no request was served: %v", f.srv.Requests())
	}
}

// checkPasswordNowhere: the password is in no output bootsync gave, nor in
// the cached clones (their config, their refs).
func (f *basicAuthFleet) checkPasswordNowhere(caches ...string) {
	t := f.t
	for _, out := range f.outputs {
		if strings.Contains(out, basicAuthPassword) {
			t.Errorf("the password shows in the output:\n%s", out)
		}
	}
	for _, dir := range caches {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte(basicAuthPassword)) {
				t.Errorf("the password is stored in %s", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
