package reconcile

import (
	"errors"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/reason"
	"github.com/bootsync/bootsync/registry"
)

// Reason is a word of bootsync's failure vocabulary (package reason).
type Reason = reason.Reason

// Reasons a pass fails, for status.json, logs and the errors metric. Git
// and registry failures are prefixed: "git-not-fast-forward",
// "registry-unauthorized"; signature refusals use the policy reasons
// ("no-signature", "bad-signature", "wrong-identity", ...).
const (
	ReasonState       Reason = "state"        // the state directory could not be read or written
	ReasonBootc       Reason = "bootc"        // a bootc command failed
	ReasonNotBootc    Reason = "not-bootc"    // the host is not deployed by bootc
	ReasonInvalidRepo Reason = "invalid-repo" // the fleet repository does not decode or render
	ReasonEtc         Reason = "etc"          // the /etc overlay could not be planned or written
	ReasonFleetLock   Reason = "fleetlock"    // the FleetLock server failed (not: refused a slot)
	ReasonReboot      Reason = "reboot"       // the reboot command failed or did not reboot
	ReasonHealth      Reason = "health"       // health checks failed after an update
	// ReasonReservedPath: the spec targets a path the host reserves
	// (etcoverlay.ReservedPaths, files named in the host configuration).
	ReasonReservedPath Reason = "reserved-path"
	// ReasonPolicy: the image policy could not be built or applied (for
	// instance, a trusted key file cannot be read).
	ReasonPolicy Reason = "policy"
	// ReasonHostPolicyUnavailable: the host's containers policy could not
	// be evaluated (not: it refused the image, which is host-policy).
	ReasonHostPolicyUnavailable Reason = "host-policy-unavailable"
	// ReasonSecret: a secret of the spec cannot be opened with this host's
	// keys (not encrypted to them, tampered with, or the host's key files
	// are unreadable); the whole pass is refused and nothing changes.
	ReasonSecret Reason = "secret"
	// ReasonInternal is an error that carries no reason of its own.
	ReasonInternal Reason = "internal"
)

// PassError is a failed pass with its machine-readable reason.
type PassError struct {
	Reason Reason
	Err    error
}

func (e *PassError) Error() string { return e.Err.Error() }
func (e *PassError) Unwrap() error { return e.Err }

// ReasonOf returns the reason of a pass error ("" for nil, "internal" for
// an error that carries none).
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var pe *PassError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return ReasonInternal
}

// imageReason is a refusal's own reason (no-signature, wrong-identity,
// registry-not-allowed, ...) or, for a registry failure, "registry-" and the
// registry's reason (registry-unavailable, registry-unauthorized, ...).
func imageReason(err error) Reason {
	var refused *policy.RefusedError
	if errors.As(err, &refused) {
		return refused.Reason
	}
	if r := registry.ReasonOf(err); r != "" {
		return r.In("registry")
	}
	return ReasonPolicy
}
