package policy

import (
	"errors"
	"fmt"

	"github.com/bootsync/bootsync/registry"
)

// Reasons an image is refused. They are stable strings: `bootsync image
// verify` prints them, and the agent records them in its journal.
const (
	ReasonNoSignature        = "no-signature"         // no signature of any supported format exists for the digest
	ReasonBadSignature       = "bad-signature"        // signatures exist, but none verifies with a trusted key
	ReasonWrongDigest        = "wrong-digest"         // a trusted key signed another digest
	ReasonWrongIdentity      = "wrong-identity"       // a trusted key signed this digest for another repository
	ReasonRegistryNotAllowed = "registry-not-allowed" // the repository is outside an allow-list
	ReasonMalformedSignature = "malformed-signature"  // a signature artifact could not be decoded
	// ReasonHostPolicy: the host's own containers-policy.json (what bootc's
	// pull enforces) refuses the image.
	ReasonHostPolicy = "host-policy"
)

// Sentinel errors for errors.Is; every *RefusedError matches the one for its
// Reason.
var (
	ErrNoSignature        = errors.New(ReasonNoSignature)
	ErrBadSignature       = errors.New(ReasonBadSignature)
	ErrWrongDigest        = errors.New(ReasonWrongDigest)
	ErrWrongIdentity      = errors.New(ReasonWrongIdentity)
	ErrRegistryNotAllowed = errors.New(ReasonRegistryNotAllowed)
	ErrMalformedSignature = errors.New(ReasonMalformedSignature)
	ErrHostPolicy         = errors.New(ReasonHostPolicy)
)

var sentinels = map[string]error{
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
	Reason string // one of the Reason* constants
	Detail string // what was found, for the operator
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("image %s refused: %s: %s", e.Ref, e.Reason, e.Detail)
}

// Is matches the sentinel error of e's reason.
func (e *RefusedError) Is(target error) bool { return sentinels[e.Reason] == target }

// Reason returns why err refused or failed: a Reason* constant for a
// refusal, the registry's reason ("unauthorized", "not-found", ...) for a
// registry failure, "error" for anything else and "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	if r := registry.Reason(err); r != "" {
		return r
	}
	return "error"
}
