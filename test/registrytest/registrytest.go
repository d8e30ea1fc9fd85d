// Package registrytest runs go-containerregistry's in-process registry on
// 127.0.0.1 for unit tests, behind a handler that records every request and
// can inject faults (5xx, 429, a registry that does not answer HEAD, ...).
// End-to-end tests use Debian's distribution registry instead
// (test/registryserver).
package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is a recording in-process registry; it stops with the test.
type Registry struct {
	Host string // host:port on 127.0.0.1

	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	requests []string // "METHOD /path"
	fault    func(w http.ResponseWriter, r *http.Request) bool
}

// New starts a registry; referrersAPI turns on the OCI 1.1 referrers API.
func New(t testing.TB, referrersAPI bool) *Registry {
	t.Helper()
	r := &Registry{t: t}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(referrersAPI))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		fault := r.fault
		r.mu.Unlock()
		if fault != nil && fault(w, req) {
			return
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

// Close stops serving: nothing listens on Host any more.
func (r *Registry) Close() { r.srv.Close() }

// SetFault installs f; it handles a request when it returns true.
func (r *Registry) SetFault(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Reset forgets the requests recorded so far.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// Recorded returns the requests since the start or the last Reset.
func (r *Registry) Recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Count returns the recorded requests with method (any when empty) and a
// path starting with prefix.
func (r *Registry) Count(method, prefix string) int {
	n := 0
	for _, req := range r.Recorded() {
		m, p, _ := strings.Cut(req, " ")
		if (method == "" || m == method) && strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// Write pushes img to repo:tag and returns its manifest digest.
func (r *Registry) Write(repo, tag string, img v1.Image) string {
	r.t.Helper()
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		r.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return d.String()
}

// PushRandom pushes a random single-platform image to repo:tag and returns
// its manifest digest.
func (r *Registry) PushRandom(repo, tag string) (string, v1.Image) {
	r.t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.Write(repo, tag, img), img
}

// PushIndex pushes a two-platform index (linux/amd64, linux/arm64) to
// repo:tag and returns the index digest and the per-architecture digests.
func (r *Registry) PushIndex(repo, tag string) (string, map[string]string) {
	r.t.Helper()
	perArch := map[string]string{}
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(128, 1)
		if err != nil {
			r.t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			r.t.Fatal(err)
		}
		perArch[arch] = d.String()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		r.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return d.String(), perArch
}
