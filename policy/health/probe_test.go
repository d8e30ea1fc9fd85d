package health

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// gitHTTPServer serves a one-commit repository with the real git
// http-backend over smart HTTP on 127.0.0.1.
func gitHTTPServer(t *testing.T) *httptest.Server {
	t.Helper()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main", work)
	git("-C", work, "commit", "-q", "--allow-empty", "-m", "fleet")
	git("clone", "-q", "--bare", work, filepath.Join(root, "fleet.git"))
	srv := httptest.NewServer(&cgi.Handler{
		Path:   "/usr/lib/git-core/git-http-backend",
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		Logger: log.New(io.Discard, "", 0),
	})
	t.Cleanup(srv.Close)
	return srv
}

// registryWithImage runs go-containerregistry's registry on 127.0.0.1 with
// one image pushed to it.
func registryWithImage(t *testing.T) (*httptest.Server, name.Reference) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/os/base:stable", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return srv, ref
}

// The management-plane checks with the probes an agent would pass: a real
// `git ls-remote` of the fleet repository and a HEAD of the image manifest.
// Cutting either endpoint off fails the verdict, naming what is unreachable.
func TestManagementPlaneDetectsLostControlPlane(t *testing.T) {
	gitSrv := gitHTTPServer(t)
	regSrv, ref := registryWithImage(t)
	repoURL := gitSrv.URL + "/fleet.git"

	lsRemote := func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, "git", "ls-remote", "--exit-code", repoURL, "refs/heads/main")
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git ls-remote %s: %w: %s", repoURL, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	headImage := func(ctx context.Context) error {
		_, err := remote.Head(ref, remote.WithContext(ctx))
		return err
	}
	checks, err := ManagementPlane("http://agent:s3cret@"+strings.TrimPrefix(repoURL, "http://"), lsRemote, ref.Context().RegistryStr(), headImage)
	if err != nil {
		t.Fatal(err)
	}
	for i := range checks {
		if !checks[i].Required {
			t.Fatalf("management-plane check %s is not required", checks[i].Name)
		}
		if strings.Contains(checks[i].Target, "s3cret") {
			t.Fatalf("target %q leaks the password", checks[i].Target)
		}
		checks[i].Timeout, checks[i].Interval, checks[i].Retries = 5*time.Second, testInterval, 1
	}
	r := newRunner(t)

	rep, err := r.Run(context.Background(), checks, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("control plane reachable, but the verdict is %v", rep.Err())
	}

	// The registry goes away: only the registry check fails.
	regSrv.Close()
	rep, err = r.Run(context.Background(), checks, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Failed()) != 1 || rep.Failed()[0].Name != RegistryCheck {
		t.Fatalf("registry down: failed = %+v, want only %s", rep.Failed(), RegistryCheck)
	}

	// And the Git remote too.
	gitSrv.Close()
	rep, err = r.Run(context.Background(), checks, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	e := rep.Err()
	if rep.OK || e == nil || !strings.Contains(e.Error(), GitRemoteCheck) || !strings.Contains(e.Error(), "git ls-remote") || !strings.Contains(e.Error(), RegistryCheck) {
		t.Fatalf("control plane down: Err() = %v, want both checks named with their errors", e)
	}

	if _, err := ManagementPlane(repoURL, nil, "r", headImage); err == nil {
		t.Fatal("ManagementPlane accepted a nil probe")
	}
}
