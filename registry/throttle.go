package registry

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Throttling is what a registry said about its load during the calls made
// with a context from ObserveThrottling: whether any answer was 429 Too
// Many Requests or 503 Service Unavailable, and the longest Retry-After it
// asked for. A caller that polls (the fleet source) uses it to space its
// next request out, so that a struggling registry sees fewer requests, not
// more.
type Throttling struct {
	mu         sync.Mutex
	throttled  bool
	status     int
	retryAfter time.Duration
}

type throttlingKey struct{}

// ObserveThrottling returns a context whose registry requests record 429 and
// 503 answers (and their Retry-After) in the returned Throttling.
func ObserveThrottling(ctx context.Context) (context.Context, *Throttling) {
	t := &Throttling{}
	return context.WithValue(ctx, throttlingKey{}, t), t
}

// Throttled reports whether a 429 or 503 answer was seen, its status code
// and the longest Retry-After (0 when none was given).
func (t *Throttling) Throttled() (bool, int, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.throttled, t.status, t.retryAfter
}

func (t *Throttling) record(resp *http.Response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.throttled, t.status = true, resp.StatusCode
	if after, ok := retryAfter(resp); ok && after > t.retryAfter {
		t.retryAfter = after
	}
}

// throttleObserver records 429 and 503 answers in the request context's
// Throttling, if any. It sits under the retrying layer, so it sees every
// attempt.
type throttleObserver struct{ next http.RoundTripper }

func (o throttleObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if t, ok := req.Context().Value(throttlingKey{}).(*Throttling); ok {
			t.record(resp)
		}
	}
	return resp, err
}

// NoRetry is a RetryPolicy without retries: for a caller whose next poll is
// the retry, after a backoff of its own.
var NoRetry = RetryPolicy{Max: 0, MaxRetryAfter: time.Hour}
