package policy

import (
	"errors"
	"fmt"

	"github.com/bootsync/bootsync/reason"
)

// Reason is a word of bootsync's failure vocabulary (package reason).
type Reason = reason.Reason

// Reasons an image is refused. They are stable strings: `bootsync image
// verify` prints them, and the agent records them in its journal.
const (
	ReasonNoSignature        Reason = "no-signature"         // no signature of any supported format exists for the digest
	ReasonBadSignature       Reason = "bad-signature"        // signatures exist, but none verifies with a trusted key
	ReasonWrongDigest        Reason = "wrong-digest"         // a trusted key signed another digest
	ReasonWrongIdentity      Reason = "wrong-identity"       // a trusted key signed this digest for another repository
	ReasonRegistryNotAllowed Reason = "registry-not-allowed" // the repository is outside an allow-list
	ReasonMalformedSignature Reason = "malformed-signature"  // a signature artifact could not be decoded
	// ReasonHostPolicy: the host's own containers-policy.json (what bootc's
	// pull enforces) refuses the image.
	ReasonHostPolicy Reason = "host-policy"
)

// Sentinel errors for errors.Is; every *RefusedError matches the one for its
// Reason.
var (
	ErrNoSignature        = errors.New(string(ReasonNoSignature))
	ErrBadSignature       = errors.New(string(ReasonBadSignature))
	ErrWrongDigest        = errors.New(string(ReasonWrongDigest))
	ErrWrongIdentity      = errors.New(string(ReasonWrongIdentity))
	ErrRegistryNotAllowed = errors.New(string(ReasonRegistryNotAllowed))
	ErrMalformedSignature = errors.New(string(ReasonMalformedSignature))
	ErrHostPolicy         = errors.New(string(ReasonHostPolicy))
)

var sentinels = map[Reason]error{
	ReasonNoSignature:        ErrNoSignature,
	ReasonBadSignature:       ErrBadSignature,
	ReasonWrongDigest:        ErrWrongDigest,
	ReasonWrongIdentity:      ErrWrongIdentity,
	ReasonRegistryNotAllowed: ErrRegistryNotAllowed,
	ReasonMalformedSignature: ErrMalformedSignature,
	ReasonHostPolicy:         ErrHostPolicy,
}

// RefusedError says that policy refuses an image, and why. It is a verdict,
// not a failure to decide: registry and network failures are returned as
// *registry.Error instead.
type RefusedError struct {
	Ref    string // the image, repository@digest when known
	Reason Reason // one of the Reason* constants
	Detail string // what was found, for the operator
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("image %s refused: %s: %s", e.Ref, e.Reason, e.Detail)
}

// Is matches the sentinel error of e's reason.
func (e *RefusedError) Is(target error) bool { return sentinels[e.Reason] == target }
