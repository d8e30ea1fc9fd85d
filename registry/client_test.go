package registry_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootsync/bootsync/registry"
)

func mustResolve(t *testing.T, c *registry.Client, ref string) *registry.Resolved {
	t.Helper()
	res, err := c.Resolve(ctx(t), ref)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", ref, err)
	}
	return res
}

func wantReason(t *testing.T, err error, reason registry.Reason, status int) *registry.Error {
	t.Helper()
	var re *registry.Error
	if !errors.As(err, &re) {
		t.Fatalf("error = %v (%T), want *registry.Error with reason %q", err, err, reason)
	}
	if re.Reason != reason || re.StatusCode != status {
		t.Fatalf("reason/status = %q/%d, want %q/%d; error: %v", re.Reason, re.StatusCode, reason, status, err)
	}
	return re
}

func TestResolveTagToManifestDigestWithOneHEAD(t *testing.T) {
	tr := newTestRegistry(t)
	digest, _ := tr.PushRandom("os/base", "stable")
	c := newClient(t)

	res := mustResolve(t, c, tr.Host+"/os/base:stable")
	if res.Digest != digest || res.IsIndex || res.Repository != tr.Host+"/os/base" {
		t.Fatalf("Resolve = %+v, want digest %s in %s/os/base, not an index", res, digest, tr.Host)
	}
	if got, want := res.Reference(), tr.Host+"/os/base@"+digest; got != want {
		t.Fatalf("Reference() = %s, want %s", got, want)
	}

	// Warm client: a tag resolution is exactly one HEAD of the manifest.
	tr.Reset()
	mustResolve(t, c, tr.Host+"/os/base:stable")
	if got := tr.Recorded(); len(got) != 1 || got[0] != "HEAD /v2/os/base/manifests/stable" {
		t.Fatalf("requests for a warm tag resolution = %q, want exactly [HEAD /v2/os/base/manifests/stable]", got)
	}
}

func TestResolveFollowsTheTag(t *testing.T) {
	tr := newTestRegistry(t)
	first, _ := tr.PushRandom("os/base", "stable")
	c := newClient(t)
	if got := mustResolve(t, c, tr.Host+"/os/base:stable").Digest; got != first {
		t.Fatalf("digest = %s, want %s", got, first)
	}
	second, _ := tr.PushRandom("os/base", "stable")
	if got := mustResolve(t, c, tr.Host+"/os/base:stable").Digest; got != second {
		t.Fatalf("after the tag moved: digest = %s, want %s", got, second)
	}
}

func TestResolveDigestPinnedMakesNoRequest(t *testing.T) {
	tr := newTestRegistry(t)
	digest, _ := tr.PushRandom("os/base", "stable")
	c := newClient(t) // cold: not even the /v2/ handshake may happen
	tr.Reset()

	res := mustResolve(t, c, tr.Host+"/os/base@"+digest)
	if res.Digest != digest || res.Repository != tr.Host+"/os/base" {
		t.Fatalf("Resolve = %+v", res)
	}
	// A tag plus a lock entry resolves to the locked digest, also without a request.
	locked, err := c.ResolvePinned(ctx(t), tr.Host+"/os/base:stable", digest)
	if err != nil {
		t.Fatal(err)
	}
	if locked.Reference() != tr.Host+"/os/base@"+digest {
		t.Fatalf("ResolvePinned reference = %s", locked.Reference())
	}
	// tag@digest is pinned to the digest.
	if got := mustResolve(t, c, tr.Host+"/os/base:ignored@"+digest); got.Digest != digest {
		t.Fatalf("tag@digest resolved to %s", got.Digest)
	}
	if got := tr.Recorded(); len(got) != 0 {
		t.Fatalf("requests for pinned resolutions = %q, want none", got)
	}
}

func TestResolveIndexPinsIndexDigestAndFindsPlatform(t *testing.T) {
	tr := newTestRegistry(t)
	idxDigest, perArch := tr.PushIndex("os/multi", "stable")
	c := newClient(t)

	res := mustResolve(t, c, tr.Host+"/os/multi:stable")
	if res.Digest != idxDigest || !res.IsIndex {
		t.Fatalf("Resolve = %+v, want the index digest %s with IsIndex", res, idxDigest)
	}

	tr.Reset()
	for _, arch := range []string{"arm64", "aarch64"} {
		got, err := c.PlatformDigest(ctx(t), res.Reference(), arch)
		if err != nil {
			t.Fatal(err)
		}
		if got != perArch["arm64"] {
			t.Fatalf("PlatformDigest(%s) = %s, want %s", arch, got, perArch["arm64"])
		}
	}
	got, err := c.PlatformDigest(ctx(t), res.Reference(), "x86_64")
	if err != nil || got != perArch["amd64"] {
		t.Fatalf("PlatformDigest(x86_64) = %s, %v; want %s", got, err, perArch["amd64"])
	}
	// One GET of the index by digest, then answers from the cache.
	if got := tr.Recorded(); len(got) != 1 || got[0] != "GET /v2/os/multi/manifests/"+idxDigest {
		t.Fatalf("requests = %q, want one GET of the index by digest", got)
	}

	_, err = c.PlatformDigest(ctx(t), res.Reference(), "s390x")
	re := wantReason(t, err, registry.ReasonNoPlatform, 0)
	if !strings.Contains(re.Error(), "linux/amd64, linux/arm64") {
		t.Fatalf("error should list the platforms the index has: %v", re)
	}

	// Converged when bootc booted the platform manifest of the pinned index
	// (bootc reports that as imageDigest), or the pinned digest itself.
	for booted, want := range map[string]bool{perArch["amd64"]: true, idxDigest: true, perArch["arm64"]: false, "": false} {
		ok, err := c.IsBooted(ctx(t), res.Reference(), "amd64", booted)
		if err != nil || ok != want {
			t.Fatalf("IsBooted(amd64, %q) = %v, %v; want %v", booted, ok, err, want)
		}
	}
}

func TestPlatformDigestOfPlainManifestIsItself(t *testing.T) {
	tr := newTestRegistry(t)
	digest, _ := tr.PushRandom("os/base", "stable")
	c := newClient(t)
	res := mustResolve(t, c, tr.Host+"/os/base:stable")
	tr.Reset()
	got, err := c.PlatformDigest(ctx(t), res.Reference(), "arm64")
	if err != nil || got != digest {
		t.Fatalf("PlatformDigest = %s, %v; want %s", got, err, digest)
	}
	if n := len(tr.Recorded()); n != 0 {
		t.Fatalf("%d requests; the kind is known from Resolve, want none", n)
	}
	// With a fresh client the kind is unknown: one GET decides.
	fresh := newClient(t)
	tr.Reset()
	if got, err := fresh.PlatformDigest(ctx(t), res.Reference(), "amd64"); err != nil || got != digest {
		t.Fatalf("PlatformDigest (cold) = %s, %v", got, err)
	}
	if n := tr.Count("GET", "/v2/os/base/manifests/"); n != 1 {
		t.Fatalf("cold PlatformDigest made %d manifest GETs, want 1", n)
	}
}

func TestResolveFallsBackToGETWhenHEADIsNotSupported(t *testing.T) {
	tr := newTestRegistry(t)
	digest, _ := tr.PushRandom("os/base", "stable")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return true
		}
		return false
	})
	c := newClient(t)
	mustResolve(t, c, tr.Host+"/os/base:stable") // warm up the handshake
	tr.Reset()
	res := mustResolve(t, c, tr.Host+"/os/base:stable")
	if res.Digest != digest {
		t.Fatalf("digest via GET = %s, want %s", res.Digest, digest)
	}
	if got := tr.Recorded(); len(got) != 2 || got[0] != "HEAD /v2/os/base/manifests/stable" || got[1] != "GET /v2/os/base/manifests/stable" {
		t.Fatalf("requests = %q, want HEAD (405, not retried) then GET", got)
	}
}

// failFirst answers the first n manifest requests with status (and
// Retry-After when set), then lets requests through.
func failFirst(n int, status int, retryAfter string) (func(http.ResponseWriter, *http.Request) bool, *atomic.Int32) {
	var seen atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		if int(seen.Add(1)) > n {
			return false
		}
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		return true
	}, &seen
}

func TestResolveRetriesRateLimitAndServerErrorsThenSucceeds(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			tr := newTestRegistry(t)
			digest, _ := tr.PushRandom("os/base", "stable")
			fault, _ := failFirst(2, status, "0")
			tr.SetFault(fault)
			tr.Reset()
			c := newClient(t)
			res := mustResolve(t, c, tr.Host+"/os/base:stable")
			if res.Digest != digest {
				t.Fatalf("digest = %s, want %s", res.Digest, digest)
			}
			if n := tr.Count("HEAD", "/v2/os/base/manifests/stable"); n != 3 {
				t.Fatalf("%d HEAD requests, want 3 (two failures retried, then success)", n)
			}
		})
	}
}

func TestResolveGivesUpAfterRetries(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	fault, _ := failFirst(1000, http.StatusServiceUnavailable, "")
	tr.SetFault(fault)
	tr.Reset()
	c := newClient(t)
	_, err := c.Resolve(ctx(t), tr.Host+"/os/base:stable")
	wantReason(t, err, registry.ReasonUnavailable, http.StatusServiceUnavailable)
	if n := tr.Count("HEAD", "/v2/os/base/manifests/"); n != 1+fastRetry.Max {
		t.Fatalf("%d attempts, want %d (1 + %d retries)", n, 1+fastRetry.Max, fastRetry.Max)
	}
	if !strings.HasPrefix(err.Error(), "resolve "+tr.Host+"/os/base:stable: unavailable (HTTP 503)") {
		t.Fatalf("error should say what was done and why: %v", err)
	}
}

func TestResolveRateLimitBeyondMaxRetryAfterFailsAtOnce(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	fault, _ := failFirst(1000, http.StatusTooManyRequests, "3600")
	tr.SetFault(fault)
	tr.Reset()
	c := newClient(t)
	_, err := c.Resolve(ctx(t), tr.Host+"/os/base:stable")
	wantReason(t, err, registry.ReasonRateLimited, http.StatusTooManyRequests)
	if !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Fatalf("error should say how long the registry asked to wait: %v", err)
	}
	if n := tr.Count("HEAD", "/v2/os/base/manifests/"); n != 1 {
		t.Fatalf("%d attempts, want 1: waiting an hour would block the agent", n)
	}
}

func TestResolveClientErrorsAreNotRetried(t *testing.T) {
	cases := []struct {
		status int
		reason registry.Reason
	}{
		{http.StatusUnauthorized, registry.ReasonUnauthorized},
		{http.StatusForbidden, registry.ReasonForbidden},
		{http.StatusNotFound, registry.ReasonNotFound},
		{http.StatusBadRequest, registry.ReasonRegistryError},
	}
	for _, tc := range cases {
		t.Run(string(tc.reason), func(t *testing.T) {
			tr := newTestRegistry(t)
			tr.PushRandom("os/base", "stable")
			fault, _ := failFirst(1000, tc.status, "")
			tr.SetFault(fault)
			tr.Reset()
			c := newClient(t)
			_, err := c.Resolve(ctx(t), tr.Host+"/os/base:stable")
			wantReason(t, err, tc.reason, tc.status)
			if n := tr.Count("HEAD", "/v2/os/base/manifests/"); n != 1 {
				t.Fatalf("%d attempts for HTTP %d, want exactly 1 (no retry)", n, tc.status)
			}
		})
	}
}

func TestResolveMissingTagIsNotFound(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	c := newClient(t)
	tr.Reset()
	_, err := c.Resolve(ctx(t), tr.Host+"/os/base:nope")
	wantReason(t, err, registry.ReasonNotFound, http.StatusNotFound)
	if n := tr.Count("HEAD", "/v2/os/base/manifests/nope"); n != 1 {
		t.Fatalf("%d HEADs, want 1", n)
	}
}

func TestResolveUnreachableRegistryIsUnavailable(t *testing.T) {
	tr := newTestRegistry(t)
	host := tr.Host
	tr.Close() // nothing listens there any more
	c := newClient(t)
	_, err := c.Resolve(ctx(t), host+"/os/base:stable")
	wantReason(t, err, registry.ReasonUnavailable, 0)
}

func TestResolveTimeout(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			<-r.Context().Done() // a registry that never answers
			return true
		}
		return false
	})
	c := newClient(t, registry.WithTimeout(300*time.Millisecond))
	_, err := c.Resolve(ctx(t), tr.Host+"/os/base:stable")
	re := wantReason(t, err, registry.ReasonTimeout, 0)
	if !strings.Contains(re.Error(), "300ms") {
		t.Fatalf("timeout error should name the limit: %v", re)
	}
}

func TestResolveCanceledByCaller(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	c := newClient(t)
	cctx, cancel := contextWithCancel(t)
	cancel()
	_, err := c.Resolve(cctx, tr.Host+"/os/base:stable")
	wantReason(t, err, registry.ReasonCanceled, 0)
}

func TestResolveRefusesSchema1(t *testing.T) {
	tr := newTestRegistry(t)
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("ab", 32))
			w.Header().Set("Content-Length", "2")
			w.WriteHeader(http.StatusOK)
			return true
		}
		return false
	})
	c := newClient(t)
	_, err := c.Resolve(ctx(t), tr.Host+"/os/old:1")
	wantReason(t, err, registry.ReasonUnsupported, 0)
}

func TestParseReferenceIsStrict(t *testing.T) {
	bad := []string{"", " quay.io/a/b:1", "fedora", "fedora:40", "library/fedora:40", "quay.io/fedora/fedora-bootc",
		"quay.io/Fedora/x:1", "quay.io/a/b@sha256:1234", "http://quay.io/a/b:1"}
	for _, ref := range bad {
		_, err := registry.ParseReference(ref)
		if registry.ReasonOf(err) != registry.ReasonInvalidReference {
			t.Errorf("ParseReference(%q) = %v, want an invalid-reference error", ref, err)
		}
	}
	good := []string{"quay.io/fedora/fedora-bootc:40", "127.0.0.1:5000/os/base:stable", "localhost/os:1",
		"registry.example.com/os/base@sha256:" + strings.Repeat("0a", 32)}
	for _, ref := range good {
		if _, err := registry.ParseReference(ref); err != nil {
			t.Errorf("ParseReference(%q): %v", ref, err)
		}
	}
}

func TestPinnedReferenceDropsTheTag(t *testing.T) {
	d := "sha256:" + strings.Repeat("0a", 32)
	got, err := registry.PinnedReference("registry.example.com/os/base:stable", d)
	if err != nil || got != "registry.example.com/os/base@"+d {
		t.Fatalf("PinnedReference = %q, %v", got, err)
	}
	if _, err := registry.PinnedReference("registry.example.com/os/base:stable", "sha256:zz"); err == nil {
		t.Fatal("a malformed digest must be refused")
	}
}

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"} {
		if got, err := registry.NormalizeArch(in); err != nil || got != want {
			t.Errorf("NormalizeArch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := registry.NormalizeArch("vax"); err == nil {
		t.Error("unknown architectures must be refused")
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := map[string]registry.Option{
		"zero timeout":       registry.WithTimeout(0),
		"negative retries":   registry.WithRetry(registry.RetryPolicy{Max: -1}),
		"max below min":      registry.WithRetry(registry.RetryPolicy{Max: 1, MinWait: time.Second, MaxWait: time.Millisecond}),
		"url as insecure":    registry.WithInsecureRegistries("http://127.0.0.1:5000"),
		"nil transport":      registry.WithTransport(nil),
		"empty auth root":    registry.WithAuthRoot(""),
		"newline user agent": registry.WithUserAgent("a\nb"),
		"nil keychain":       registry.WithKeychain(nil),
	}
	for name, opt := range bad {
		if _, err := registry.New(opt); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestPingMakesOneRequestEvenForAPinnedDigest(t *testing.T) {
	tr := newTestRegistry(t)
	digest, _ := tr.PushRandom("os/base", "stable")
	c := newClient(t)
	ref := tr.Host + "/os/base@" + digest
	mustResolve(t, c, ref) // resolution of a pinned digest is free ...
	tr.Reset()
	if err := c.Ping(ctx(t), ref); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// ... but a ping must reach the registry.
	if n := tr.Count("HEAD", "/v2/os/base/manifests/"); n != 1 {
		t.Fatalf("Ping made %d manifest HEAD requests (%q), want 1", n, tr.Recorded())
	}
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	if err := c.Ping(ctx(t), ref); err == nil {
		t.Fatal("Ping succeeded against a registry that refuses the credentials")
	} else {
		wantReason(t, err, "unauthorized", http.StatusUnauthorized)
	}
}
