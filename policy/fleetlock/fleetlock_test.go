package fleetlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/fleetlockserver"
)

func newClient(t *testing.T, url, group, id string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, group, id, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewValidatesConfiguration(t *testing.T) {
	cases := []struct {
		name, url, group, id string
		opts                 []Option
		want                 string // empty: valid
	}{
		{"https", "https://fleetlock.example.com", "", "a", nil, ""},
		{"https with path", "https://example.com/fleet_lock/", "workers", "a", nil, ""},
		{"http loopback", "http://127.0.0.1:8080", "", "a", nil, ""},
		{"http localhost", "http://localhost:8080", "", "a", nil, ""},
		{"http ipv6 loopback", "http://[::1]:8080", "", "a", nil, ""},
		{"http remote", "http://fleetlock.example.com", "", "a", nil, "plain http:// is only allowed for loopback"},
		{"http remote allowed", "http://fleetlock.example.com", "", "a", []Option{WithAllowHTTP()}, ""},
		{"other scheme", "ftp://example.com", "", "a", nil, "want an https:// URL"},
		{"no host", "https:///v1", "", "a", nil, "want an https:// URL"},
		{"relative", "fleetlock.example.com", "", "a", nil, "want an https:// URL"},
		{"credentials", "https://user:pw@example.com", "", "a", nil, "credentials in the URL are not supported"},
		{"query", "https://example.com/?x=1", "", "a", nil, "must not have a query"},
		{"group with space", "https://example.com", "web servers", "a", nil, `group "web servers": must match`},
		{"group with slash", "https://example.com", "a/b", "a", nil, "must match"},
		{"empty id", "https://example.com", "", " ", nil, "id is empty"},
		{"nil client", "https://example.com", "", "a", []Option{WithHTTPClient(nil)}, "HTTP client is nil"},
		{"zero timeout", "https://example.com", "", "a", []Option{WithTimeout(0)}, "must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.url, tc.group, tc.id, tc.opts...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New(%q): %v", tc.url, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%q, %q) = %v, want an error containing %q", tc.url, tc.group, err, tc.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error %q leaks the password", err)
			}
			_ = c
		})
	}
	if c := newClient(t, "https://example.com", "", "a"); c.Group() != DefaultGroup {
		t.Fatalf("empty group became %q, want %q", c.Group(), DefaultGroup)
	}
}

type recordedRequest struct {
	Method, Path, Protocol, ContentType string
	Body                                []byte
}

// recorder is a real HTTP server that records requests and answers with
// the given status and body.
func recorder(t *testing.T, status int, contentType, body string) (*httptest.Server, func() []recordedRequest) {
	var mu sync.Mutex
	var got []recordedRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, recordedRequest{r.Method, r.URL.Path, r.Header.Get("fleet-lock-protocol"), r.Header.Get("Content-Type"), b})
		mu.Unlock()
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recordedRequest {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestRequestsFollowTheProtocol(t *testing.T) {
	srv, requests := recorder(t, http.StatusOK, "", "")
	// A base URL with a path and a trailing slash, as in Zincati's docs.
	c := newClient(t, srv.URL+"/fleet_lock/", "workers", "c988d2509fdf4cdcbed39037c56406fb")
	ctx := context.Background()
	if err := c.PreReboot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	got := requests()
	if len(got) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(got))
	}
	for i, wantPath := range []string{"/fleet_lock/v1/pre-reboot", "/fleet_lock/v1/steady-state"} {
		r := got[i]
		if r.Method != http.MethodPost || r.Path != wantPath || r.Protocol != "true" || r.ContentType != "application/json" {
			t.Errorf("request %d = %s %s (fleet-lock-protocol %q, content type %q), want POST %s with the protocol header",
				i, r.Method, r.Path, r.Protocol, r.ContentType, wantPath)
		}
		if string(r.Body) != `{"client_params":{"id":"c988d2509fdf4cdcbed39037c56406fb","group":"workers"}}` {
			t.Errorf("request %d body = %s", i, r.Body)
		}
	}
}

func TestRefusalsReportKindAndValue(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantKind    string
		wantValue   string
	}{
		// airlock: JSON written by http.Error, so text/plain and a newline.
		{"airlock", 500, "text/plain; charset=utf-8", `{"kind":"failed_lock","value":"all 2 semaphore slots currently locked"}` + "\n", "failed_lock", "all 2 semaphore slots currently locked"},
		// poseidon/fleetlock: 423 Locked with application/json.
		{"poseidon", 423, "application/json", `{"kind":"locked","value":"reboot lease unavailable, held by node-3"}`, "locked", "reboot lease unavailable, held by node-3"},
		// A proxy in front of the server.
		{"proxy", 502, "text/html", "<html><body>Bad Gateway</body></html>", "", "<html><body>Bad Gateway</body></html>"},
		{"empty", 503, "", "", "", ""},
		// 2xx other than 200 is not a grant either: the protocol says 200.
		{"204", 204, "", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := recorder(t, tc.status, tc.contentType, tc.body)
			err := newClient(t, srv.URL, "", "host-1").PreReboot(context.Background())
			var ferr *Error
			if !errors.As(err, &ferr) {
				t.Fatalf("PreReboot = %v, want a *fleetlock.Error", err)
			}
			if ferr.StatusCode != tc.status || ferr.Kind != tc.wantKind || ferr.Value != tc.wantValue || ferr.Op != "pre-reboot" {
				t.Fatalf("got %+v, want status %d kind %q value %q", ferr, tc.status, tc.wantKind, tc.wantValue)
			}
			if !strings.Contains(err.Error(), srv.URL+"/v1/pre-reboot") || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) ||
				!strings.Contains(err.Error(), tc.wantKind) || !strings.Contains(err.Error(), tc.wantValue) {
				t.Fatalf("error %q should name the endpoint, status, kind and value", err)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	granted := atomic.Int32{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/pre-reboot", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere/v1/pre-reboot", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere/v1/pre-reboot", func(w http.ResponseWriter, r *http.Request) { granted.Add(1) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// Even with a caller-supplied client that follows redirects.
	err := newClient(t, srv.URL, "", "host-1", WithHTTPClient(&http.Client{})).PreReboot(context.Background())
	var ferr *Error
	if !errors.As(err, &ferr) || ferr.StatusCode != http.StatusTemporaryRedirect || granted.Load() != 0 {
		t.Fatalf("PreReboot = %v (redirect target hit %d times), want a refusal with status 307", err, granted.Load())
	}
}

func TestUnreachableAndHangingServersAreErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()
	err = newClient(t, closedURL, "", "host-1").PreReboot(context.Background())
	var ferr *Error
	if err == nil || errors.As(err, &ferr) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), closedURL+"/v1/pre-reboot") {
		t.Fatalf("closed server: %v, want a connection error naming the endpoint", err)
	}

	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	err = newClient(t, hang.URL, "", "host-1", WithTimeout(200*time.Millisecond)).SteadyState(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "steady-state") {
		t.Fatalf("hanging server: %v, want a deadline error", err)
	}
}

// simulatedHost is one agent: it loops pre-reboot (retrying refusals with a
// short backoff) -> reboot -> steady-state, as the reconcile engine will.
type simulatedHost struct {
	client *Client
	fails  bool // the update fails its health checks: no steady-state
}

type fleet struct {
	rebooting    atomic.Int32 // hosts between a granted pre-reboot and steady-state
	maxRebooting atomic.Int32
	refusals     atomic.Int32
}

func (f *fleet) run(ctx context.Context, h simulatedHost) error {
	backoff := Backoff{Min: time.Millisecond, Max: 8 * time.Millisecond}
	for attempt := 0; ; attempt++ {
		err := h.client.PreReboot(ctx)
		if err == nil {
			break
		}
		var ferr *Error
		if !errors.As(err, &ferr) || ferr.Kind != fleetlockserver.KindFailedLock {
			return fmt.Errorf("host %s: unexpected pre-reboot error: %w", h.client.ID(), err)
		}
		f.refusals.Add(1)
		select {
		case <-time.After(backoff.Delay(attempt)):
		case <-ctx.Done():
			return fmt.Errorf("host %s: never got a slot: %w", h.client.ID(), ctx.Err())
		}
	}
	n := f.rebooting.Add(1)
	for {
		m := f.maxRebooting.Load()
		if n <= m || f.maxRebooting.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond) // reboot, verify
	if h.fails {
		return nil // rolled back; keeps the slot
	}
	f.rebooting.Add(-1)
	if err := h.client.SteadyState(ctx); err != nil {
		return fmt.Errorf("host %s: steady-state: %w", h.client.ID(), err)
	}
	return nil
}

func hostIDs(t *testing.T, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		var mid [16]byte
		for j := range mid {
			mid[j] = byte(rand.IntN(256))
		}
		id, err := MachineID(writeMachineID(t, fmt.Sprintf("%x\n", mid)))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

func runFleet(t *testing.T, srv *fleetlockserver.Server, hosts []simulatedHost) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := &fleet{}
	errs := make(chan error, len(hosts))
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() { errs <- f.run(ctx, h) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("%v\n%s", err, srv)
		}
	}
	return f
}

// The server's own record must never show more holders than slots.
func assertNeverOverSlots(t *testing.T, srv *fleetlockserver.Server, group string, slots int) {
	t.Helper()
	if m := srv.MaxHolders(group); m > slots {
		t.Fatalf("server saw %d concurrent holders in %s, slots = %d", m, group, slots)
	}
	for _, e := range srv.History() {
		if len(e.Holders) > slots {
			t.Fatalf("history event %+v has more holders than %d slots", e, slots)
		}
	}
}

func TestTenHostsTwoSlotsNeverMoreThanTwoReboot(t *testing.T) {
	srv := fleetlockserver.Start(t, map[string]int{"default": 2})
	var hosts []simulatedHost
	for _, id := range hostIDs(t, 10) {
		hosts = append(hosts, simulatedHost{client: newClient(t, srv.URL(), "", id)})
	}
	f := runFleet(t, srv, hosts)

	assertNeverOverSlots(t, srv, "default", 2)
	if m := f.maxRebooting.Load(); m > 2 {
		t.Fatalf("%d hosts rebooted at once", m)
	}
	if h := srv.Holders("default"); len(h) != 0 {
		t.Fatalf("slots still held after every host reached steady state: %v", h)
	}
	// Every host got its turn exactly once.
	granted := map[string]int{}
	for _, e := range srv.History() {
		if e.Op == "pre-reboot" && e.Status == http.StatusOK {
			granted[e.ID]++
		}
	}
	if len(granted) != 10 {
		t.Fatalf("%d hosts got a slot, want 10", len(granted))
	}
	for id, n := range granted {
		if n != 1 {
			t.Fatalf("host %s was granted %d times", id, n)
		}
	}
	t.Logf("10 hosts, 2 slots: %d refusals, server max holders %d", f.refusals.Load(), srv.MaxHolders("default"))
}

func TestFailedHostKeepsItsSlot(t *testing.T) {
	srv := fleetlockserver.Start(t, map[string]int{"default": 2})
	ids := hostIDs(t, 10)
	bad := newClient(t, srv.URL(), "", ids[0])
	// The bad host takes its slot first, its update fails, it rolls back and
	// never reports steady state.
	runFleet(t, srv, []simulatedHost{{client: bad, fails: true}})
	if h := srv.Holders("default"); !slices.Equal(h, []string{ids[0]}) {
		t.Fatalf("holders after the failed update = %v, want only the failed host", h)
	}

	// The other nine still get through, one at a time, on the remaining slot.
	var hosts []simulatedHost
	for _, id := range ids[1:] {
		hosts = append(hosts, simulatedHost{client: newClient(t, srv.URL(), "", id)})
	}
	f := runFleet(t, srv, hosts)
	assertNeverOverSlots(t, srv, "default", 2)
	if m := f.maxRebooting.Load(); m > 1 {
		t.Fatalf("%d healthy hosts rebooted at once with one slot left", m)
	}
	for _, e := range srv.History() {
		if !slices.Contains(e.Holders, ids[0]) {
			t.Fatalf("the failed host lost its slot at %+v", e)
		}
	}
	if h := srv.Holders("default"); !slices.Equal(h, []string{ids[0]}) {
		t.Fatalf("holders at the end = %v, want only the failed host", h)
	}

	// The failed host asking again (the agent restarted) is still granted
	// (recursive lock) without taking a second slot.
	if err := bad.PreReboot(context.Background()); err != nil {
		t.Fatalf("recursive pre-reboot: %v", err)
	}
	if h := srv.Holders("default"); len(h) != 1 {
		t.Fatalf("holders = %v after a recursive lock", h)
	}
}

// With one slot, a failed host stops the whole group: that is the point.
func TestFailedHostStopsTheGroupWhenItHeldTheLastSlot(t *testing.T) {
	srv := fleetlockserver.Start(t, map[string]int{"canary": 1, "default": 1})
	ids := hostIDs(t, 3)
	bad := newClient(t, srv.URL(), "canary", ids[0])
	if err := bad.PreReboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[1:] {
		err := newClient(t, srv.URL(), "canary", id).PreReboot(context.Background())
		var ferr *Error
		if !errors.As(err, &ferr) || ferr.Kind != fleetlockserver.KindFailedLock || ferr.StatusCode != 500 ||
			ferr.Value != "all 1 semaphore slots currently locked" {
			t.Fatalf("host %s: %v, want failed_lock", id, err)
		}
	}
	// Another group is not affected.
	if err := newClient(t, srv.URL(), "default", ids[1]).PreReboot(context.Background()); err != nil {
		t.Fatalf("other group: %v", err)
	}
	// An operator releases the failed host's slot (as `curl` would, with its id).
	if err := newClient(t, srv.URL(), "canary", ids[0]).SteadyState(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := newClient(t, srv.URL(), "canary", ids[1]).PreReboot(context.Background()); err != nil {
		t.Fatalf("after the operator released the slot: %v", err)
	}
}

func TestUnknownGroupIsReported(t *testing.T) {
	srv := fleetlockserver.Start(t, map[string]int{"default": 1})
	err := newClient(t, srv.URL(), "workers", "host-1").PreReboot(context.Background())
	var ferr *Error
	if !errors.As(err, &ferr) || ferr.Kind != fleetlockserver.KindUnknownGroup || !strings.Contains(ferr.Value, `"workers"`) {
		t.Fatalf("PreReboot = %v, want unknown_group naming the group", err)
	}
}

func TestBackoffGrowsToMaxWithJitter(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Minute}
	for attempt, base := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 10: time.Minute, 1000: time.Minute} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 50; i++ {
			d := b.Delay(attempt)
			if d < base*8/10 || d > base*12/10 {
				t.Fatalf("Delay(%d) = %s, want %s ± 20%%", attempt, d, base)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("Delay(%d) has no jitter", attempt)
		}
	}
}

func BenchmarkPreRebootSteadyState(b *testing.B) {
	srv, err := fleetlockserver.New(map[string]int{"default": 1})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, err := New(srv.URL(), "", "bench-host")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if err := c.PreReboot(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.SteadyState(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
