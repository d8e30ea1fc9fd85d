package reconcile

import (
	"errors"
	"strings"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
)

// Reasons a pass fails, for status.json, logs and the errors metric. Git
// and registry failures are prefixed: "git-not-fast-forward",
// "registry-unauthorized"; signature refusals use the policy reasons
// ("no-signature", "bad-signature", "wrong-identity", ...).
const (
	ReasonState       = "state"        // the state directory could not be read or written
	ReasonBootc       = "bootc"        // a bootc command failed
	ReasonNotBootc    = "not-bootc"    // the host is not deployed by bootc
	ReasonInvalidRepo = "invalid-repo" // the fleet repository does not decode or render
	ReasonEtc         = "etc"          // the /etc overlay could not be planned or written
	ReasonFleetLock   = "fleetlock"    // the FleetLock server failed (not: refused a slot)
	ReasonReboot      = "reboot"       // the reboot command failed or did not reboot
	ReasonHealth      = "health"       // health checks failed after an update
	// ReasonReservedPath: the spec targets a path the host reserves
	// (etcoverlay.ReservedPaths, files named in the host configuration).
	ReasonReservedPath = "reserved-path"
)

// PassError is a failed pass with its machine-readable reason.
type PassError struct {
	Reason string
	Err    error
}

func (e *PassError) Error() string { return e.Err.Error() }
func (e *PassError) Unwrap() error { return e.Err }

// Reason returns the reason of a pass error ("" for nil, "internal" for an
// error that carries none).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var pe *PassError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return "internal"
}

// imageReason is a refusal's own reason (no-signature, wrong-identity,
// registry-not-allowed, ...) or, for a registry failure, "registry-" and the
// registry's reason (registry-unavailable, registry-unauthorized, ...).
func imageReason(err error) string {
	var refused *policy.RefusedError
	if errors.As(err, &refused) {
		return refused.Reason
	}
	var regErr *registry.Error
	if errors.As(err, &regErr) {
		return "registry-" + strings.TrimPrefix(regErr.Reason, "registry-")
	}
	return "policy"
}
