package registry_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
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
)

// testRegistry is go-containerregistry's in-process registry on 127.0.0.1
// behind a handler that records requests and can inject faults.
type testRegistry struct {
	t    testing.TB
	srv  *httptest.Server
	host string

	mu       sync.Mutex
	requests []string // "METHOD /path"
	fault    func(w http.ResponseWriter, r *http.Request) bool
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	tr := &testRegistry{t: t}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
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

// setFault installs f; it handles a request when it returns true.
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

// count returns the recorded requests with method and path prefix.
func (tr *testRegistry) count(method, prefix string) int {
	n := 0
	for _, r := range tr.recorded() {
		m, p, _ := strings.Cut(r, " ")
		if (method == "" || m == method) && strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// pushImage writes a random single-platform image to repo:tag and returns
// its manifest digest.
func (tr *testRegistry) pushImage(repo, tag string) (string, v1.Image) {
	tr.t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		tr.t.Fatal(err)
	}
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
	return d.String(), img
}

// pushIndex writes a two-platform index (linux/amd64, linux/arm64) to
// repo:tag and returns the index digest and the per-architecture digests.
func (tr *testRegistry) pushIndex(repo, tag string) (string, map[string]string) {
	tr.t.Helper()
	perArch := map[string]string{}
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(128, 1)
		if err != nil {
			tr.t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			tr.t.Fatal(err)
		}
		perArch[arch] = d.String()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref, err := name.NewTag(tr.host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		tr.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		tr.t.Fatal(err)
	}
	return d.String(), perArch
}

// fastRetry keeps retry tests quick; the policy is the same.
var fastRetry = registry.RetryPolicy{Max: 3, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond, MaxRetryAfter: 2 * time.Second}

func newClient(t testing.TB, opts ...registry.Option) *registry.Client {
	t.Helper()
	opts = append([]registry.Option{registry.WithRetry(fastRetry), registry.WithAuthRoot(t.TempDir())}, opts...)
	c, err := registry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context { return t.Context() }

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
