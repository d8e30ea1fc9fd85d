package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy"
)

// Reasons of the host checks.
const (
	// ReasonOtherUpdater: another updater (bootc-fetch-apply-updates.timer,
	// Zincati, rpm-ostreed-automatic.timer) is enabled on the host and
	// agent.allowOtherUpdaters is not set.
	ReasonOtherUpdater Reason = "other-updater"
	// ReasonMachineID: the host file names another machine's machineID
	// (a cloned disk, or a host file copied without updating it).
	ReasonMachineID Reason = "machine-id-mismatch"
)

// HostPolicy evaluates the host's own containers-policy.json, the policy
// bootc's pull enforces (policy/hostpolicy.Checker).
type HostPolicy interface {
	// Check returns a *policy.RefusedError with reason host-policy when
	// the policy refuses ref (repository@digest), and a description of
	// the verdict otherwise.
	Check(ctx context.Context, ref string) (string, error)
	// Fingerprint changes when the policy (or registries.d) changes.
	Fingerprint() string
}

// otherUpdater is an update service that stages or reboots on its own.
type otherUpdater struct {
	unit  string
	wants []string // the .wants directories enabling it
	mask  string   // how to mask it
}

var otherUpdaters = []otherUpdater{
	{"bootc-fetch-apply-updates.timer", []string{"timers.target.wants"}, "systemctl mask --now bootc-fetch-apply-updates.timer"},
	{"rpm-ostreed-automatic.timer", []string{"timers.target.wants"}, "systemctl mask --now rpm-ostreed-automatic.timer"},
	{"zincati.service", []string{"multi-user.target.wants"}, "systemctl mask --now zincati.service"},
}

// enabledUpdaters lists the other updaters enabled and not masked under
// root (a unit is enabled by a link in a .wants directory in /etc or
// /usr/lib, and masked by a link to /dev/null in /etc or /run).
func enabledUpdaters(root string) []otherUpdater {
	var out []otherUpdater
	for _, u := range otherUpdaters {
		if masked(root, u.unit) {
			continue
		}
		for _, wants := range u.wants {
			if exists(filepath.Join(root, "etc/systemd/system", wants, u.unit)) ||
				exists(filepath.Join(root, "usr/lib/systemd/system", wants, u.unit)) {
				out = append(out, u)
				break
			}
		}
	}
	return out
}

func masked(root, unit string) bool {
	for _, dir := range []string{"etc/systemd/system", "run/systemd/system"} {
		if target, err := os.Readlink(filepath.Join(root, dir, unit)); err == nil && target == "/dev/null" {
			return true
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// checkOtherUpdaters records enabled updaters in the status and refuses
// the pass unless agent.allowOtherUpdaters is set: two updaters fight over
// the staged deployment, and bootc's timer undoes rollbacks and reboots
// outside the fleet's reboot policy.
func (a *Agent) checkOtherUpdaters(st *Status) error {
	found := enabledUpdaters(a.cfg.Root)
	if len(found) == 0 {
		return nil
	}
	units := make([]string, len(found))
	masks := make([]string, len(found))
	for i, u := range found {
		units[i], masks[i] = u.unit, u.mask
	}
	st.OtherUpdaters = units
	if a.cfg.AllowOtherUpdaters {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%s enabled: it stages and reboots on its own schedule (allowed by agent.allowOtherUpdaters)", strings.Join(units, ", ")))
		return nil
	}
	return &PassError{Reason: ReasonOtherUpdater, Err: fmt.Errorf(
		"another updater is enabled on host %s: %s; it would stage and reboot behind bootsync's back and undo its rollbacks, so bootsync does nothing until it is masked (%s) or agent.allowOtherUpdaters is set",
		a.cfg.Host, strings.Join(units, ", "), strings.Join(masks, "; "))}
}

// checkMachineID refuses a spec whose host file names another machine.
func (a *Agent) checkMachineID(spec *hostspec.HostSpec) error {
	if spec.MachineID == "" {
		return nil
	}
	path := filepath.Join(a.cfg.Root, "etc/machine-id")
	raw, err := os.ReadFile(path)
	local := strings.TrimSpace(string(raw))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		local = "(none: " + path + " does not exist)"
	case err != nil:
		return &PassError{Reason: ReasonMachineID, Err: fmt.Errorf("host %s: read machine id: %w", a.cfg.Host, err)}
	}
	if !strings.EqualFold(local, spec.MachineID) {
		return &PassError{Reason: ReasonMachineID, Err: fmt.Errorf(
			"host %s: the fleet repository's host file (%s) names machine ID %s, but this machine's /etc/machine-id is %s: refusing another machine's configuration (a cloned disk, or a host file that names the wrong machine); nothing was changed",
			a.cfg.Host, spec.Provenance["machineID"], spec.MachineID, local)}
	}
	return nil
}

// checkHostPolicy evaluates the host's containers policy for the image
// bootc will be given, before anything is staged.
func (a *Agent) checkHostPolicy(ctx context.Context, ref string) (string, error) {
	if a.deps.HostPolicy == nil {
		return "", nil
	}
	verdict, err := a.deps.HostPolicy.Check(ctx, ref)
	if err != nil {
		return "", &PassError{Reason: hostPolicyReason(err), Err: fmt.Errorf("host %s: the host's containers policy for %s: %w", a.cfg.Host, ref, err)}
	}
	return verdict, nil
}

func hostPolicyReason(err error) Reason {
	if errors.Is(err, policy.ErrHostPolicy) {
		return policy.ReasonHostPolicy
	}
	return ReasonHostPolicyUnavailable
}

func (a *Agent) hostPolicyFingerprint() string {
	if a.deps.HostPolicy == nil {
		return "none"
	}
	return a.deps.HostPolicy.Fingerprint()
}
