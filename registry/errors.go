package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/bootsync/bootsync/reason"
)

// Reason is a word of bootsync's failure vocabulary (package reason).
type Reason = reason.Reason

// Reasons carried by *Error. They are stable strings: the agent records them
// in its journal and metrics, and `bootsync image verify` prints them.
const (
	ReasonInvalidReference Reason = "invalid-reference" // the reference does not parse strictly
	ReasonUnauthorized     Reason = "unauthorized"      // HTTP 401: missing or refused credentials
	ReasonForbidden        Reason = "forbidden"         // HTTP 403: credentials lack access
	ReasonNotFound         Reason = "not-found"         // HTTP 404: no such repository, tag or digest
	ReasonRateLimited      Reason = "rate-limited"      // HTTP 429 after the retries (or Retry-After too long)
	ReasonUnavailable      Reason = "unavailable"       // 5xx or no connection, after the retries
	ReasonTimeout          Reason = "timeout"           // the operation exceeded its deadline
	ReasonCanceled         Reason = "canceled"          // the caller's context was canceled
	ReasonBadResponse      Reason = "bad-response"      // the registry answered something unusable
	ReasonUnsupported      Reason = "unsupported"       // a manifest bootc cannot boot (e.g. schema 1)
	ReasonNoPlatform       Reason = "no-platform"       // an index without a manifest for the host's architecture
	ReasonRegistryError    Reason = "registry-error"    // any other HTTP status
	ReasonAuthConfig       Reason = "auth-config"       // a credential file exists but cannot be read
)

// Error is a registry operation that failed. Op says what was being done
// ("resolve", "fetch signatures", ...), Ref names the image, StatusCode is the
// last HTTP status seen (0 when there was no response), and Reason is one of
// the Reason* constants. Err is the underlying error.
type Error struct {
	Op         string
	Ref        string
	StatusCode int
	Reason     Reason
	Err        error
	// hint is a sentence telling the user what to check.
	hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Ref != "" {
		b.WriteString(" ")
		b.WriteString(e.Ref)
	}
	b.WriteString(": ")
	b.WriteString(string(e.Reason))
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.hint != "" {
		b.WriteString(" (")
		b.WriteString(e.hint)
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of the first *Error in err's chain, or ""
// when err is nil or not a registry error.
func ReasonOf(err error) Reason {
	var re *Error
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// retryAfterTooLongError is returned by the retrying transport when a
// registry asks for a longer pause than the client is willing to wait: the
// caller should try again later instead of blocking a reconcile pass.
type retryAfterTooLongError struct {
	statusCode int
	after      time.Duration
	limit      time.Duration
}

func (e *retryAfterTooLongError) Error() string {
	return fmt.Sprintf("registry asks to retry after %s, longer than the %s this client waits", e.after, e.limit)
}

// classify turns any error from go-containerregistry or the transport into an
// *Error with a reason. timeout is the operation's deadline, named in the
// message when it expires.
func classify(op, ref string, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) {
		return err
	}
	out := &Error{Op: op, Ref: ref, Err: err}
	var (
		terr *transport.Error
		rerr *retryAfterTooLongError
		nerr net.Error
		aerr *authFileError
	)
	switch {
	case errors.As(err, &aerr):
		out.Reason = ReasonAuthConfig
	case errors.As(err, &rerr):
		out.Reason, out.StatusCode = ReasonRateLimited, rerr.statusCode
	case errors.As(err, &terr):
		out.StatusCode = terr.StatusCode
		out.Reason = reasonForStatus(terr.StatusCode)
		switch out.Reason {
		case ReasonUnauthorized:
			out.hint = "check the credentials for this registry; bootc reads /run/ostree/auth.json, /etc/ostree/auth.json or /usr/lib/ostree/auth.json"
		case ReasonNotFound:
			out.hint = "no such repository, tag or digest in this registry"
		case ReasonForbidden:
			out.hint = "the credentials in use do not grant pull access to this repository"
		}
	case errors.Is(err, context.DeadlineExceeded):
		out.Reason = ReasonTimeout
		if timeout > 0 {
			out.hint = fmt.Sprintf("no complete answer within %s", timeout)
		}
	case errors.Is(err, context.Canceled):
		out.Reason = ReasonCanceled
	case errors.As(err, &nerr):
		if nerr.Timeout() {
			out.Reason = ReasonTimeout
		} else {
			out.Reason = ReasonUnavailable
		}
	case isConnectionError(err):
		out.Reason = ReasonUnavailable
	default:
		out.Reason = ReasonBadResponse
	}
	return out
}

func isConnectionError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

func reasonForStatus(code int) Reason {
	switch {
	case code == http.StatusUnauthorized:
		return ReasonUnauthorized
	case code == http.StatusForbidden:
		return ReasonForbidden
	case code == http.StatusNotFound:
		return ReasonNotFound
	case code == http.StatusTooManyRequests:
		return ReasonRateLimited
	case code >= 500:
		return ReasonUnavailable
	default:
		return ReasonRegistryError
	}
}
