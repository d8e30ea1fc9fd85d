package ocisource

import (
	"errors"
	"fmt"
	"time"

	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/reason"
	"github.com/bootsync/bootsync/registry"
)

// Reason is why a poll failed, in bootsync's one vocabulary.
type Reason = reason.Reason

// Reasons returned by ReasonOf. The agent reports them prefixed with
// "oci-" (SourceReason), next to the "git-" reasons of a Git source.
const (
	ReasonRollback           Reason = "rollback"           // a lower generation, or the same with another commit
	ReasonUnknownGeneration  Reason = "unknown-generation" // the last applied commit's generation is not on record
	ReasonUnverifiedCommit   Reason = "unverified-commit"  // the host requires a verified commit signature; publish did not check one
	ReasonInvalidArtifact    Reason = "invalid-artifact"   // not a fleet artifact, or content that is not what publish writes
	ReasonTooLarge           Reason = "too-large"          // the content is over the host's repository size ceiling
	ReasonBackoff            Reason = "backoff"            // the registry was overloaded or down; no request until the backoff ends
	ReasonInvalidSourceState Reason = "state"              // the source's own state file cannot be read or written
	ReasonOther              Reason = "error"
)

// ReasonOf returns the reason for err (see the Reason constants; signature
// refusals give policy's reason, such as no-signature, and registry
// failures the registry's, such as unavailable). "" for nil.
func ReasonOf(err error) Reason {
	var (
		rb  *RollbackError
		bo  *BackoffError
		inv *InvalidArtifactError
		ic  *InvalidContentError
		tl  *boundedread.TooLargeError
		uc  *UnverifiedCommitError
		st  *stateError
		ref *policy.RefusedError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &rb):
		if rb.Unknown {
			return ReasonUnknownGeneration
		}
		return ReasonRollback
	case errors.As(err, &bo):
		return ReasonBackoff
	case errors.As(err, &uc):
		return ReasonUnverifiedCommit
	case errors.As(err, &tl):
		return ReasonTooLarge
	case errors.As(err, &inv), errors.As(err, &ic):
		return ReasonInvalidArtifact
	case errors.As(err, &ref):
		return ref.Reason
	case errors.As(err, &st):
		return ReasonInvalidSourceState
	}
	if r := registry.ReasonOf(err); r != "" {
		return r
	}
	return ReasonOther
}

// sourceError is what Poll returns: the reason travels with it, so the
// agent records "oci-<reason>" in status and metrics.
type sourceError struct{ err error }

func (e *sourceError) Error() string        { return e.err.Error() }
func (e *sourceError) Unwrap() error        { return e.err }
func (e *sourceError) SourceReason() Reason { return ReasonOf(e.err).In("oci") }

// RollbackError refuses an artifact that would take the host back: its
// generation is lower than the last applied commit's, or the same with
// another commit (a re-pushed old artifact, or history rewritten in Git).
// Unknown is set when the last applied commit's generation is not on
// record (the state was lost, or the host came from a Git source).
type RollbackError struct {
	Applied, Commit        string
	AppliedGen, Generation int64
	Unknown                bool
}

func (e *RollbackError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("the generation of the last applied commit %s is not on record on this host, so artifact commit %s (generation %d) cannot be shown not to go back; after checking it, accept it once with --allow-reset %s",
			e.Applied, e.Commit, e.Generation, e.Commit)
	}
	what := "lower than"
	if e.Generation == e.AppliedGen {
		what = "the same as, with another commit than,"
	}
	return fmt.Sprintf("artifact commit %s has generation %d, %s the last applied commit %s (generation %d): refused as a rollback (a re-pushed old artifact or rewritten history); go back with git revert, or accept it once with --allow-reset %s",
		e.Commit, e.Generation, what, e.Applied, e.AppliedGen, e.Commit)
}

// UnverifiedCommitError is an artifact whose commit signature publish did
// not verify, on a host that requires signed commits (trust.commitKeys).
type UnverifiedCommitError struct{ Commit string }

func (e *UnverifiedCommitError) Error() string {
	return fmt.Sprintf("artifact commit %s was published without a commit signature check, and this host requires signed commits (trust.commitKeys): publish with --commit-keys", e.Commit)
}

// InvalidArtifactError is a manifest that is not a fleet artifact.
type InvalidArtifactError struct {
	Ref string
	Err error
}

func (e *InvalidArtifactError) Error() string {
	return fmt.Sprintf("%s is not a fleet artifact as `bootsync publish` writes it: %v", e.Ref, e.Err)
}

func (e *InvalidArtifactError) Unwrap() error { return e.Err }

// BackoffError is a poll that made no request: the registry answered 429
// or 503 (or could not be reached) recently, and the source waits before
// asking again so that a struggling registry sees fewer requests.
type BackoffError struct {
	Until time.Time
	Last  error // what the last request met
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("not polling the registry until %s (backing off after: %v)", e.Until.Format(time.RFC3339), e.Last)
}

func (e *BackoffError) Unwrap() error { return e.Last }

type stateError struct{ err error }

func (e *stateError) Error() string { return "fleet source state: " + e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }
