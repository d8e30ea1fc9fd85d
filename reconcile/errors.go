package reconcile

import (
	"errors"

	"github.com/bootsync/bootsync/policy"
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

func policyReason(err error) string {
	if r := policy.Reason(err); r != "" {
		return r
	}
	return "policy"
}
