package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/bootsync/bootsync/internal/netdeadline"
)

// RetryPolicy says how a Client retries requests that failed in a way that
// may pass on its own: connection errors, HTTP 429 and 5xx (except 501).
// 401, 403, 404 and every other 4xx are never retried: repeating them cannot
// help and only delays a clear error.
type RetryPolicy struct {
	// Max is the number of retries after the first attempt; 0 disables retries.
	Max int
	// MinWait and MaxWait bound the exponential backoff between attempts.
	MinWait, MaxWait time.Duration
	// MaxRetryAfter is the longest Retry-After a registry may ask for. A
	// longer one ends the operation at once with reason "rate-limited", so
	// a reconcile pass is not blocked; the next pass tries again.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy retries four times with backoff from 500ms to 8s and
// honours a Retry-After of up to one minute.
var DefaultRetryPolicy = RetryPolicy{Max: 4, MinWait: 500 * time.Millisecond, MaxWait: 8 * time.Second, MaxRetryAfter: time.Minute}

func (p RetryPolicy) validate() error {
	switch {
	case p.Max < 0:
		return fmt.Errorf("retry policy: Max %d is negative", p.Max)
	case p.Max > 0 && p.MinWait <= 0:
		return fmt.Errorf("retry policy: MinWait %s must be positive", p.MinWait)
	case p.MaxWait < p.MinWait:
		return fmt.Errorf("retry policy: MaxWait %s is shorter than MinWait %s", p.MaxWait, p.MinWait)
	case p.MaxRetryAfter < 0:
		return fmt.Errorf("retry policy: MaxRetryAfter %s is negative", p.MaxRetryAfter)
	}
	return nil
}

// WithNetworkTimeout bounds each phase of every request: connecting, the
// TLS handshake, the response headers and every pause in a body (default
// netdeadline.Default). A registry that stalls that long is not asked again
// within the operation: the error says so at once.
func WithNetworkTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithNetworkTimeout: %s is not positive", d)
		}
		c.netTimeout = d
		return nil
	}
}

// defaultBaseTransport is http.DefaultTransport with the network timeout
// on every phase, so a registry that accepts a connection and then stalls
// costs one timeout rather than the whole operation deadline.
func defaultBaseTransport(timeout time.Duration) *http.Transport {
	if timeout <= 0 {
		timeout = netdeadline.Default
	}
	return netdeadline.Transport(timeout)
}

// newRetryingTransport wraps base in go-retryablehttp with bootsync's retry
// rules. It never logs (libraries do not log, and URLs of token endpoints
// may carry account names).
func newRetryingTransport(base http.RoundTripper, p RetryPolicy) http.RoundTripper {
	c := &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: throttleObserver{base},
			// Hand redirects up to go-containerregistry, which follows them
			// with its own checks (it refuses redirects to private networks).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Logger:       nil,
		RetryWaitMin: p.MinWait,
		RetryWaitMax: p.MaxWait,
		RetryMax:     p.Max,
		CheckRetry:   p.checkRetry,
		Backoff:      p.backoff,
		ErrorHandler: passLastResponse,
	}
	return &retryablehttp.RoundTripper{Client: c}
}

// checkRetry retries connection errors, 408, 429 and 5xx except 501, and
// nothing else. A Retry-After longer than MaxRetryAfter stops at once.
func (p RetryPolicy) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return retryableConnError(err), nil
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if after, ok := retryAfter(resp); ok && after > p.MaxRetryAfter {
			return false, &retryAfterTooLongError{statusCode: code, after: after, limit: p.MaxRetryAfter}
		}
		return true, nil
	case code == http.StatusRequestTimeout:
		return true, nil
	case code >= 500 && code != http.StatusNotImplemented && code <= 599:
		return true, nil
	default:
		return false, nil
	}
}

// backoff waits what Retry-After says (429 and 503), capped at
// MaxRetryAfter, else exponentially between MinWait and MaxWait.
func (p RetryPolicy) backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if after, ok := retryAfter(resp); ok {
			return min(after, p.MaxRetryAfter)
		}
	}
	return retryablehttp.DefaultBackoff(minWait, maxWait, attempt, nil)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}

// retryableConnError is false for errors that repeat identically: TLS and
// certificate problems, a plain-HTTP server answering a TLS client, bad URLs.
func retryableConnError(err error) bool {
	var (
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		certErr  *tls.CertificateVerificationError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case netdeadline.IsTimeout(err):
		return false // the registry stalled for a whole network timeout
	case errors.As(err, &recErr), errors.As(err, &alertErr), errors.As(err, &certErr),
		errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		return false
	}
	msg := err.Error()
	for _, permanent := range []string{
		"server gave HTTP response to HTTPS client",
		"unsupported protocol scheme",
		"stopped after",
		"invalid header",
	} {
		if strings.Contains(msg, permanent) {
			return false
		}
	}
	return true
}

// passLastResponse hands the last response (e.g. the final 503) to the
// caller so go-containerregistry can report the registry's own error body;
// with no response, it returns the error.
func passLastResponse(resp *http.Response, err error, _ int) (*http.Response, error) {
	if err != nil {
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			_ = resp.Body.Close()
		}
		return nil, err
	}
	return resp, nil
}
