package main

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/test/signer"
)

// run executes the bootsync command line and returns its exit status and output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	code := 0
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
		if ee.err != nil {
			out.WriteString("error: " + ee.err.Error() + "\n")
		}
	case err != nil:
		code = 1
		out.WriteString("error: " + err.Error() + "\n")
	}
	return code, out.String()
}

// ociRegistry starts go-containerregistry's in-process registry and returns its host:port.
func ociRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushRandom writes a random image to ref (repo:tag) and returns its digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fleetRepo writes a fleet repository using two image tags on host.
func fleetRepo(t *testing.T, host, allowed string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "fleet.yaml"), `apiVersion: bootsync.dev/v1alpha1
kind: Fleet
spec:
  image: `+host+`/os/base:stable
policy:
  registries: [`+allowed+`]
  requireSignatures: true
`)
	writeFile(t, filepath.Join(dir, "hosts/web-01.yaml"), `apiVersion: bootsync.dev/v1alpha1
kind: Host
metadata: {name: web-01}
spec:
  image: `+host+`/os/edge:v1
`)
	return dir
}

func readLock(t *testing.T, dir string) *hostspec.Lock {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, hostspec.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := hostspec.DecodeLock(hostspec.LockFile, data)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLockWritesAndChecksPins(t *testing.T) {
	host := ociRegistry(t)
	base := pushRandom(t, host+"/os/base:stable")
	edge := pushRandom(t, host+"/os/edge:v1")
	dir := fleetRepo(t, host, host+"/os")

	if code, out := run(t, "lock", "--check", "--repo", dir); code != 1 || !strings.Contains(out, "missing: "+host+"/os/base:stable") {
		t.Fatalf("lock --check without a lock: exit %d\n%s", code, out)
	}
	code, out := run(t, "lock", "--repo", dir, "--insecure-registry", host)
	if code != 0 {
		t.Fatalf("lock: exit %d\n%s", code, out)
	}
	l := readLock(t, dir)
	if len(l.Images) != 2 || l.Images[host+"/os/base:stable"] != base || l.Images[host+"/os/edge:v1"] != edge {
		t.Fatalf("lock = %v", l.Images)
	}
	first, _ := os.ReadFile(filepath.Join(dir, hostspec.LockFile))

	if code, out := run(t, "lock", "--check", "--repo", dir); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("lock --check on a fresh lock: exit %d\n%s", code, out)
	}
	if code, out := run(t, "lock", "--repo", dir); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("lock again: exit %d\n%s", code, out)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, hostspec.LockFile)); !bytes.Equal(first, again) {
		t.Fatal("locking an unchanged fleet changed the file")
	}

	moved := pushRandom(t, host+"/os/base:stable")
	code, out = run(t, "lock", "--check", "--repo", dir)
	if code != 1 || !strings.Contains(out, "stale:   "+host+"/os/base:stable locked at "+base+", now "+moved) {
		t.Fatalf("lock --check after the tag moved: exit %d\n%s", code, out)
	}
	code, out = run(t, "lock", "--repo", dir)
	if code != 0 || !strings.Contains(out, "updated: "+host+"/os/base:stable "+base+" -> "+moved) {
		t.Fatalf("lock after the tag moved: exit %d\n%s", code, out)
	}
	if got := readLock(t, dir).Images[host+"/os/base:stable"]; got != moved {
		t.Fatalf("pin = %s, want %s", got, moved)
	}
}

func TestLockReportsUnresolvableTags(t *testing.T) {
	host := ociRegistry(t)
	pushRandom(t, host+"/os/base:stable") // os/edge:v1 does not exist
	dir := fleetRepo(t, host, host+"/os")
	code, out := run(t, "lock", "--repo", dir)
	if code != 2 || !strings.Contains(out, host+"/os/edge:v1: not-found") {
		t.Fatalf("exit %d, want 2 naming the missing tag\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, hostspec.LockFile)); err == nil {
		t.Fatal("a partial lock was written")
	}
}

// signerWithKey returns a new signer whose public key is written to pub.
func signerWithKey(t *testing.T, pub string) *signer.Signer {
	t.Helper()
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WritePublicKey(pub); err != nil {
		t.Fatal(err)
	}
	return s
}

// refusingRegistry returns the host of a registry that refuses every
// request for want of credentials.
func refusingRegistry(t *testing.T) string {
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(locked.Close)
	return strings.TrimPrefix(locked.URL, "http://")
}

func TestImageVerify(t *testing.T) {
	host := ociRegistry(t)
	tmp := t.TempDir()
	pub := filepath.Join(tmp, "fleet.pub")
	s := signerWithKey(t, pub)
	config := filepath.Join(tmp, "config.yaml")
	writeFile(t, config, `host: {name: web-01}
root: `+tmp+`
trust:
  signingKeys: [`+pub+`]
  requireSignatures: true
  registries: [`+host+`/os]
`)
	signed := pushRandom(t, host+"/os/base:stable")
	if err := s.Sign(t.Context(), host+"/os/base@"+signed); err != nil {
		t.Fatal(err)
	}
	unsigned := pushRandom(t, host+"/os/base:unsigned")

	code, out := run(t, "image", "verify", "--config", config, host+"/os/base:stable")
	for _, want := range []string{host + "/os/base@" + signed, pub, "verdict:  accepted", "cosign-simplesigning"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("signed image: exit %d, output lacks %q\n%s", code, want, out)
		}
	}

	code, out = run(t, "image", "verify", "--config", config, host+"/os/base:unsigned")
	if code != 1 || !strings.Contains(out, "reason:   no-signature") || !strings.Contains(out, unsigned) {
		t.Fatalf("unsigned image: exit %d\n%s", code, out)
	}

	pushRandom(t, host+"/apps/web:1")
	code, out = run(t, "image", "verify", "--config", config, host+"/apps/web:1")
	if code != 1 || !strings.Contains(out, "reason:   registry-not-allowed") {
		t.Fatalf("image outside the allow-list: exit %d\n%s", code, out)
	}

	// With --repo, the fleet's bootsync.lock pins the tag: after the tag
	// moves to an unsigned image, the host still verifies (and would
	// deploy) the locked digest.
	dir := fleetRepo(t, host, host+"/os")
	writeFile(t, filepath.Join(dir, hostspec.LockFile), string((&hostspec.Lock{Images: map[string]string{host + "/os/base:stable": signed}}).Encode()))
	pushRandom(t, host+"/os/base:stable")
	code, out = run(t, "image", "verify", "--config", config, "--repo", dir, host+"/os/base:stable")
	if code != 0 || !strings.Contains(out, "locked:   "+signed) || !strings.Contains(out, "verdict:  accepted") {
		t.Fatalf("locked tag: exit %d\n%s", code, out)
	}
	code, out = run(t, "image", "verify", "--config", config, host+"/os/base:stable")
	if code != 1 || !strings.Contains(out, "no-signature") {
		t.Fatalf("the moved tag without the lock: exit %d\n%s", code, out)
	}

	// The fleet's allow-list applies on top of the host's.
	tight := fleetRepo(t, host, host+"/os/edge")
	code, out = run(t, "image", "verify", "--config", config, "--repo", tight, host+"/os/base@"+signed)
	if code != 1 || !strings.Contains(out, "registry-not-allowed") || !strings.Contains(out, "fleet") {
		t.Fatalf("fleet allow-list: exit %d\n%s", code, out)
	}

	// A key given on the command line that did not sign: bad signature.
	otherPub := filepath.Join(tmp, "other.pub")
	signerWithKey(t, otherPub)
	bare := filepath.Join(tmp, "bare.yaml")
	writeFile(t, bare, "host: {name: web-01}\nroot: "+tmp+"\n")
	code, out = run(t, "image", "verify", "--config", bare, "--key", otherPub, host+"/os/base@"+signed)
	if code != 1 || !strings.Contains(out, "reason:   bad-signature") {
		t.Fatalf("--key that did not sign: exit %d\n%s", code, out)
	}

	// No decision possible (the registry refuses our credentials): exit 2.
	lockedHost := refusingRegistry(t)
	code, out = run(t, "image", "verify", "--config", bare, "--key", pub, lockedHost+"/os/base:stable")
	if code != 2 || !strings.Contains(out, "unauthorized") || strings.Contains(out, "verdict") {
		t.Fatalf("registry refusing access: exit %d\n%s", code, out)
	}
}
