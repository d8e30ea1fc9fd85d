package policy_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/signer"
)

// testRegistry is go-containerregistry's in-process registry (with the
// referrers API) on 127.0.0.1, counting requests and able to inject faults.
type testRegistry struct {
	t    testing.TB
	srv  *httptest.Server
	host string

	mu       sync.Mutex
	requests []string
	fault    func(w http.ResponseWriter, r *http.Request) bool
}

func newTestRegistry(t testing.TB, referrersAPI bool) *testRegistry {
	t.Helper()
	tr := &testRegistry{t: t}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrersAPI))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.requests = append(tr.requests, r.Method+" "+r.URL.Path)
		fault := tr.fault
		tr.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

func (tr *testRegistry) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.fault = f
}

func (tr *testRegistry) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.requests = nil
}

func (tr *testRegistry) recorded() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.requests...)
}

// push writes a random image to repo:tag and returns repo@digest.
func (tr *testRegistry) push(repo, tag string) string {
	tr.t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		tr.t.Fatal(err)
	}
	return tr.write(repo, tag, img)
}

func (tr *testRegistry) write(repo, tag string, img v1.Image) string {
	tr.t.Helper()
	ref, err := name.NewTag(tr.host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		tr.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		tr.t.Fatal(err)
	}
	return tr.host + "/" + repo + "@" + d.String()
}

// pushIndex writes a linux/amd64 + linux/arm64 index and returns
// repo@index-digest and the amd64 manifest's repo@digest.
func (tr *testRegistry) pushIndex(repo, tag string) (string, string) {
	tr.t.Helper()
	var adds []mutate.IndexAddendum
	var amd64 string
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(128, 1)
		if err != nil {
			tr.t.Fatal(err)
		}
		if arch == "amd64" {
			d, _ := img.Digest()
			amd64 = tr.host + "/" + repo + "@" + d.String()
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref, err := name.NewTag(tr.host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		tr.t.Fatal(err)
	}
	d, _ := idx.Digest()
	return tr.host + "/" + repo + "@" + d.String(), amd64
}

func newSigner(t testing.TB) *signer.Signer {
	t.Helper()
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyFile writes s's public key to a file and returns its path.
func keyFile(t testing.TB, s *signer.Signer, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := s.WritePublicKey(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func newClient(t testing.TB) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.WithAuthRoot(t.TempDir()),
		registry.WithRetry(registry.RetryPolicy{Max: 2, MinWait: time.Millisecond, MaxWait: 2 * time.Millisecond, MaxRetryAfter: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
