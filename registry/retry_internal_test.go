package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func respWith(status int, retryAfter string) *http.Response {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &http.Response{StatusCode: status, Header: h}
}

func TestCheckRetryByStatus(t *testing.T) {
	p := DefaultRetryPolicy
	for status, want := range map[int]bool{
		200: false, 400: false, 401: false, 403: false, 404: false, 405: false,
		408: true, 429: true, 500: true, 501: false, 502: true, 503: true, 504: true,
	} {
		got, err := p.checkRetry(context.Background(), respWith(status, ""), nil)
		if got != want || err != nil {
			t.Errorf("checkRetry(HTTP %d) = %v, %v; want %v", status, got, err, want)
		}
	}
}

func TestCheckRetryConnectionErrors(t *testing.T) {
	p := DefaultRetryPolicy
	if ok, _ := p.checkRetry(context.Background(), nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")); !ok {
		t.Error("a refused connection should be retried")
	}
	if ok, _ := p.checkRetry(context.Background(), nil, errors.New("http: server gave HTTP response to HTTPS client")); ok {
		t.Error("a plain-HTTP server answering TLS never changes; no retry")
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if ok, err := p.checkRetry(canceled, nil, context.Canceled); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: retry=%v err=%v", ok, err)
	}
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	p := RetryPolicy{Max: 3, MinWait: 10 * time.Millisecond, MaxWait: 40 * time.Millisecond, MaxRetryAfter: 30 * time.Second}
	cases := []struct {
		resp *http.Response
		want time.Duration
	}{
		{respWith(429, "7"), 7 * time.Second},
		{respWith(503, "2"), 2 * time.Second},
		{respWith(429, "100000"), 30 * time.Second}, // capped
		{respWith(429, "soon"), 20 * time.Millisecond},
		{respWith(500, "7"), 20 * time.Millisecond}, // Retry-After only counts on 429/503
		{nil, 20 * time.Millisecond},
	}
	for i, tc := range cases {
		if got := p.backoff(p.MinWait, p.MaxWait, 1, tc.resp); got != tc.want {
			t.Errorf("case %d: backoff = %s, want %s", i, got, tc.want)
		}
	}
	date := time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)
	if got := p.backoff(p.MinWait, p.MaxWait, 0, respWith(429, date)); got <= 8*time.Second || got > 10*time.Second {
		t.Errorf("Retry-After as HTTP date: backoff = %s, want about 10s", got)
	}
	if got := p.backoff(p.MinWait, p.MaxWait, 10, nil); got != p.MaxWait {
		t.Errorf("backoff after many attempts = %s, want MaxWait %s", got, p.MaxWait)
	}
}

func TestRetryAfterBeyondLimitStops(t *testing.T) {
	p := RetryPolicy{Max: 3, MinWait: time.Millisecond, MaxWait: time.Millisecond, MaxRetryAfter: time.Minute}
	ok, err := p.checkRetry(context.Background(), respWith(429, "120"), nil)
	var tooLong *retryAfterTooLongError
	if ok || !errors.As(err, &tooLong) || tooLong.after != 2*time.Minute {
		t.Fatalf("checkRetry(429, Retry-After 120s, limit 1m) = %v, %v; want no retry and a retry-after error", ok, err)
	}
}
