package gitsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/skeema/knownhosts"

	"github.com/bootsync/bootsync/reason"
)

// Reason is a word of bootsync's failure vocabulary (package reason).
type Reason = reason.Reason

// Short machine-readable reasons returned by ReasonOf, for status and metrics.
const (
	ReasonNotFastForward     Reason = "not-fast-forward"
	ReasonUnsignedCommit     Reason = "unsigned-commit"
	ReasonUntrustedSignature Reason = "untrusted-signature"
	ReasonAuth               Reason = "auth"
	ReasonServerTrust        Reason = "server-trust"
	ReasonNotFound           Reason = "not-found"
	ReasonUnreachable        Reason = "unreachable"
	ReasonCorruptCache       Reason = "corrupt-cache"
	ReasonCanceled           Reason = "canceled"
	ReasonOther              Reason = "error"
)

// ReasonOf returns the short reason for err: one of the Reason constants.
// It returns "" for a nil error.
func ReasonOf(err error) Reason {
	var (
		nff   *NotFastForwardError
		uns   *UnsignedCommitError
		untr  *UntrustedSignatureError
		auth  *AuthError
		trust *ServerTrustError
		nf    *NotFoundError
		tr    *TransientError
		cc    *CorruptCacheError
		to    *TimeoutError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &nff):
		return ReasonNotFastForward
	case errors.As(err, &uns):
		return ReasonUnsignedCommit
	case errors.As(err, &untr):
		return ReasonUntrustedSignature
	case errors.As(err, &auth):
		return ReasonAuth
	case errors.As(err, &trust):
		return ReasonServerTrust
	case errors.As(err, &nf):
		return ReasonNotFound
	case errors.As(err, &to):
		return ReasonTimeout
	case errors.As(err, &tr):
		return ReasonUnreachable
	case errors.As(err, &cc):
		return ReasonCorruptCache
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonUnreachable
	}
	return ReasonOther
}

// NotFastForwardError refuses a ref that moved to a commit which does not
// descend from the last applied commit: rewound or force-pushed history, the
// shape of a rollback attack. `git revert` is the supported way back; an
// operator can allow one such move with WithAllowReset.
type NotFastForwardError struct {
	Ref  string // the ref that moved, e.g. refs/heads/main
	From string // the last applied commit
	To   string // the commit the ref points to now
}

func (e *NotFastForwardError) Error() string {
	return fmt.Sprintf("refusing %s at %s: it does not descend from the last applied commit %s "+
		"(history was rewound or force-pushed); undo changes with git revert instead, "+
		"or allow this one commit with a reset", e.Ref, e.To, e.From)
}

// UnsignedCommitError refuses a commit without a signature on a host that
// requires signed commits.
type UnsignedCommitError struct {
	Commit string
}

func (e *UnsignedCommitError) Error() string {
	return fmt.Sprintf("refusing commit %s: it is not signed, and this host only applies commits signed by one of its trusted keys", e.Commit)
}

// UntrustedSignatureError refuses a commit whose signature is not a valid
// signature by one of the host's trusted commit keys.
type UntrustedSignatureError struct {
	Commit string
	Format string // "openpgp", "ssh" or "x509"
	KeyID  string // OpenPGP issuer key id (16 hex digits) or SSH key fingerprint, when known
	Err    error  // why verification failed
}

func (e *UntrustedSignatureError) Error() string {
	key := ""
	if e.KeyID != "" {
		key = " by key " + e.KeyID
	}
	return fmt.Sprintf("refusing commit %s: its %s signature%s is not a valid signature by a trusted commit key: %v", e.Commit, e.Format, key, e.Err)
}

func (e *UntrustedSignatureError) Unwrap() error { return e.Err }

// AuthError reports that the Git server refused our credentials, or that
// the configured credentials could not be read. It is permanent: retrying
// will not help until the configuration changes.
type AuthError struct {
	URL string // redacted
	Err error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("authenticate to %s: %v", e.URL, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ServerTrustError reports that the Git server's identity could not be
// verified: an unknown or changed SSH host key, or a TLS certificate that
// does not verify. It is permanent.
type ServerTrustError struct {
	URL string // redacted
	Err error
}

func (e *ServerTrustError) Error() string {
	return fmt.Sprintf("verify the identity of %s: %v", e.URL, e.Err)
}

func (e *ServerTrustError) Unwrap() error { return e.Err }

// NotFoundError reports a repository, ref or commit that does not exist on
// the server. It is permanent.
type NotFoundError struct {
	URL string // redacted
	Ref string // the missing ref or commit; empty when the repository itself is missing
	Err error
}

func (e *NotFoundError) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("%s not found in %s: %v", e.Ref, e.URL, e.Err)
	}
	return fmt.Sprintf("repository %s not found: %v", e.URL, e.Err)
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// TransientError reports a network failure that persisted through every
// retry: the server was unreachable, timed out or failed with 5xx.
type TransientError struct {
	URL      string // redacted
	Attempts int
	Err      error // the last failure
}

func (e *TransientError) Error() string {
	return fmt.Sprintf("%s unreachable after %d attempts: %v", e.URL, e.Attempts, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// CorruptCacheError describes a local cache that failed verification. Poll
// discards such a cache and clones again; it reports the discarded cache in
// PollResult.Recovered and returns this error only if that did not help.
type CorruptCacheError struct {
	Dir string
	Err error
}

func (e *CorruptCacheError) Error() string {
	return fmt.Sprintf("git cache %s is corrupt: %v", e.Dir, e.Err)
}

func (e *CorruptCacheError) Unwrap() error { return e.Err }

// errClass says how a failed network operation is reported and retried.
type errClass int

const (
	classPermanent errClass = iota
	classTransient
	classAuth
	classServerTrust
	classNotFound
	classCanceled
)

// causes walks err's chain, including the causes go-git keeps in
// UnexpectedError and PermanentError, which do not implement Unwrap.
func causes(err error, visit func(error) bool) bool {
	for err != nil {
		if visit(err) {
			return true
		}
		switch e := err.(type) {
		case *plumbing.UnexpectedError:
			err = e.Err
		case *plumbing.PermanentError:
			err = e.Err
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if causes(inner, visit) {
					return true
				}
			}
			return false
		default:
			err = errors.Unwrap(err)
		}
	}
	return false
}

// classify decides whether a failure of a network step is worth retrying.
func classify(ctx context.Context, err error) errClass {
	if ctx.Err() != nil {
		return classCanceled
	}
	class := classPermanent
	causes(err, func(e error) bool {
		var httpErr *githttp.Err
		var certInvalid x509.CertificateInvalidError
		var unknownAuthority x509.UnknownAuthorityError
		var hostname x509.HostnameError
		var tlsVerify *tls.CertificateVerificationError
		var netErr net.Error
		switch {
		case errors.Is(e, transport.ErrAuthenticationRequired),
			errors.Is(e, transport.ErrAuthorizationFailed),
			errors.Is(e, transport.ErrInvalidAuthMethod),
			strings.Contains(e.Error(), "ssh: unable to authenticate"):
			class = classAuth
		case knownhosts.IsHostKeyChanged(e), knownhosts.IsHostUnknown(e),
			errors.As(e, &certInvalid), errors.As(e, &unknownAuthority),
			errors.As(e, &hostname), errors.As(e, &tlsVerify):
			class = classServerTrust
		case errors.Is(e, transport.ErrRepositoryNotFound),
			errors.Is(e, transport.ErrEmptyRemoteRepository),
			strings.Contains(e.Error(), "does not appear to be a git repository"),
			strings.Contains(e.Error(), "not our ref"):
			class = classNotFound
		case errors.As(e, &httpErr):
			switch code := httpErr.Response.StatusCode; {
			case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
				class = classTransient
			default:
				return false // keep looking; other 4xx are permanent
			}
		case errors.Is(e, syscall.ECONNREFUSED), errors.Is(e, syscall.ECONNRESET),
			errors.Is(e, syscall.ECONNABORTED), errors.Is(e, syscall.EHOSTUNREACH),
			errors.Is(e, syscall.ENETUNREACH), errors.Is(e, syscall.EPIPE),
			errors.Is(e, syscall.ETIMEDOUT),
			errors.Is(e, io.ErrUnexpectedEOF), errors.Is(e, io.EOF):
			class = classTransient
		case errors.As(e, &netErr):
			class = classTransient // DNS failures, timeouts, closed connections
		default:
			return false
		}
		return true
	})
	return class
}
