package ocisource

import (
	"math/rand/v2"
	"time"

	"github.com/bootsync/bootsync/registry"
)

// Backoff bounds.
const (
	// maxBackoffFactor caps the wait at this many poll intervals.
	maxBackoffFactor = 16
	// maxRetryAfter caps what a registry's Retry-After can ask for.
	maxRetryAfter = time.Hour
)

// backoff spaces polls out while the registry is overloaded or down, so a
// fleet that meets 429 and 503 answers sends fewer requests, not more. The
// fleet source makes no retries within a poll: the next poll is the retry.
// After the n-th failed poll in a row, no request is made for a random
// time in [2^(n-1), 2^n) poll intervals (at most maxBackoffFactor
// intervals), or for the Retry-After the registry asked for when that is
// longer (at most an hour). Jitter keeps hosts that failed together from coming
// back together. A poll that gets through ends the backoff.
type backoff struct {
	interval time.Duration
	failures int
	until    time.Time
	last     error
	randN    func(n int64) int64
}

func newBackoff(interval time.Duration) *backoff {
	return &backoff{interval: interval, randN: rand.Int64N}
}

// check returns a *BackoffError while polls must wait.
func (b *backoff) check(now time.Time) error {
	if now.Before(b.until) {
		return &BackoffError{Until: b.until, Last: b.last}
	}
	return nil
}

// done records how a poll that made requests ended.
func (b *backoff) done(now time.Time, err error, thr *registry.Throttling) {
	throttled, _, retryAfter := thr.Throttled()
	if !throttled && !overloaded(err) {
		b.failures, b.until, b.last = 0, time.Time{}, nil
		return
	}
	b.failures++
	// [base, 2·base) for base = interval·2^(n-1): the next poll skips at
	// least one interval.
	base := b.interval
	for i := 1; i < b.failures && base < maxBackoffFactor/2*b.interval; i++ {
		base *= 2
	}
	wait := base + time.Duration(b.randN(int64(base)))
	if retryAfter > 0 {
		wait = max(wait, min(retryAfter, maxRetryAfter))
	}
	b.until, b.last = now.Add(wait), err
}

// overloaded reports a failure that means the registry (or the way to it)
// cannot take the request now: the next poll should wait longer.
func overloaded(err error) bool {
	switch registry.ReasonOf(err) {
	case registry.ReasonRateLimited, registry.ReasonUnavailable, registry.ReasonTimeout:
		return true
	}
	return false
}
