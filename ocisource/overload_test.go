package ocisource_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/registry"
)

// overloadLog records, per host, when (on the test's clock) the registry
// saw a request and what it answered.
type overloadLog struct {
	mu    sync.Mutex
	clk   *clock
	n     int
	on    bool
	times map[string][]time.Time // host → request times
	after map[string]time.Time   // host → no request before (a Retry-After)
	early []string               // requests made before their Retry-After
}

var hostUA = regexp.MustCompile(`host-\d+`)

// fault answers every other request: 503 with Retry-After 300 s, or 429
// without one, in turn; the rest reach the registry.
func (l *overloadLog) fault(w http.ResponseWriter, r *http.Request) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	host, now := hostUA.FindString(r.UserAgent()), l.clk.now
	l.times[host] = append(l.times[host], now)
	if now.Before(l.after[host]) {
		l.early = append(l.early, fmt.Sprintf("%s asked at %s, before the Retry-After it was given (%s)", host, now, l.after[host]))
	}
	if !l.on {
		return false
	}
	l.n++
	switch l.n % 4 {
	case 1:
		w.Header().Set("Retry-After", "300")
		l.after[host] = now.Add(300 * time.Second)
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	case 3:
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	return false
}

// inWindow counts the requests made in [from, from+d).
func (l *overloadLog) inWindow(from time.Time, d time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ts := range l.times {
		for _, t := range ts {
			if !t.Before(from) && t.Before(from.Add(d)) {
				n++
			}
		}
	}
	return n
}

// Many hosts poll a registry that answers half the requests with 503
// (Retry-After) or 429: the aggregate request rate falls below the
// healthy one, in every window, and no host asks before the Retry-After
// it was given. The hosts poll as the agent does, every interval plus
// jitter, on a shared test clock: deterministic, no real waiting.
func TestOverloadedRegistrySeesFewerRequests(t *testing.T) {
	const hosts, interval, jitter = 40, time.Minute, 6 * time.Second
	f := newFleet(t)
	c1 := f.commit(map[string]string{"fleet.yaml": "v1\n"})
	f.publish("main", nil, "")
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	log := &overloadLog{clk: clk, times: map[string][]time.Time{}, after: map[string]time.Time{}}
	f.reg.SetFault(log.fault)

	next := make([]time.Time, hosts)
	srcs := make([]*ocisource.Source, hosts)
	for i := range srcs {
		c, err := registry.New(registry.WithInsecureRegistries(f.reg.Host), registry.WithAuthRoot(t.TempDir()),
			registry.WithRetry(registry.NoRetry), registry.WithUserAgent(fmt.Sprintf("host-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		srcs[i] = f.source(t.TempDir(), ocisource.WithRegistry(c), ocisource.WithClock(clk.Now), ocisource.WithPollInterval(interval))
		f.poll(srcs[i], "")
		next[i] = clk.now.Add(interval * time.Duration(i) / hosts) // spread over one interval
	}
	log.times = map[string][]time.Time{} // the first polls downloaded the artifact: not counted
	start := clk.now
	// Ten healthy windows of five intervals, then ten with half the
	// requests refused; each host polls at its interval plus jitter.
	const window, windows = 5 * interval, 10
	for clk.now.Before(start.Add(2 * windows * window)) {
		log.mu.Lock()
		log.on = !clk.now.Before(start.Add(windows * window))
		log.mu.Unlock()
		for i, s := range srcs {
			if clk.now.Before(next[i]) {
				continue
			}
			if _, err := s.Poll(context.Background(), c1); err != nil && !overloadReason(err) {
				t.Fatalf("host %d at %s: %v (reason %s)", i, clk.now.Sub(start), err, reasonOf(err))
			}
			next[i] = clk.now.Add(interval + time.Duration(i)*jitter/hosts)
		}
		clk.now = clk.now.Add(time.Second)
	}

	if len(log.early) > 0 {
		t.Errorf("Retry-After not honoured:\n%s", strings.Join(log.early, "\n"))
	}
	healthy := log.inWindow(start, windows*window) / windows
	t.Logf("healthy: %d requests per %s window", healthy, window)
	if healthy < 4*hosts || healthy > 6*hosts {
		t.Fatalf("healthy window has %d requests, want about %d (one per host per interval)", healthy, 5*hosts)
	}
	for w := range windows {
		from := start.Add(time.Duration(windows+w) * window)
		n := log.inWindow(from, window)
		t.Logf("window %d with half refused: %d requests", w+1, n)
		if n > healthy {
			t.Errorf("window %d with half the requests refused saw %d requests, more than the %d of a healthy window", w+1, n, healthy)
		}
		if w > 0 && 4*n > 3*healthy {
			t.Errorf("window %d with half refused saw %d requests: want at most three quarters of the healthy %d", w+1, n, healthy)
		}
	}
}

// overloadReason is a poll that failed on a refused request or waited.
func overloadReason(err error) bool {
	var bo *ocisource.BackoffError
	switch reasonOf(err) {
	case "oci-unavailable", "oci-rate-limited":
		return true
	}
	return errors.As(err, &bo)
}
