package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/bootsync/bootsync/apply/bootc"
)

// current is the booted host's status and the deployments behind it.
type current struct {
	state  *State
	host   *bootc.Host
	booted *Deployment
	staged *Deployment
	rollbk *Deployment
	others []Deployment
}

func (inv *invocation) current() (*current, error) {
	st, err := inv.sysroot.LoadState(inv.ctx)
	if err != nil {
		return nil, err
	}
	h, err := HostStatus(st)
	if err != nil {
		return nil, err
	}
	c := &current{state: st, host: h}
	c.booted, c.staged, c.rollbk, c.others = st.Roles()
	if c.booted == nil {
		return nil, errNotBooted
	}
	return c, nil
}

func sameSpec(a, b bootc.ImageReference) bool {
	if a.Image != b.Image || a.Transport != b.Transport || (a.Signature == nil) != (b.Signature == nil) {
		return false
	}
	return a.Signature == nil || *a.Signature == *b.Signature
}

// imgrefDisplay is bootc's `{:#}` rendering of an image reference.
func imgrefDisplay(r bootc.ImageReference) string {
	if r.EnforcesContainerPolicy() {
		return originSigned + r.Image
	}
	return r.Image
}

func (inv *invocation) cmdSwitch(args []string) error {
	fs := newFlagSet("bootc switch")
	fs.Bool("quiet", false, "Don't display progress")
	transport := fs.String("transport", bootc.TransportRegistry, "The transport")
	enforce := fs.Bool("enforce-container-sigpolicy", false, "Refuse an insecureAcceptAnything default policy")
	apply := fs.Bool("apply", false, "Reboot into the new target image")
	fs.Bool("retain", false, "Retain reference to the currently booted image")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usage(fs.verb, "expected exactly one TARGET")
	}
	target := bootc.ImageReference{Image: pos[0], Transport: *transport}
	if *enforce {
		target.Signature = &bootc.ImageSignature{Kind: bootc.SignatureContainerPolicy}
	}
	unlock, err := inv.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := inv.current()
	if err != nil {
		return fmt.Errorf("Switching: %w", err)
	}
	if spec := c.host.Spec.Image; spec != nil && sameSpec(*spec, target) {
		fmt.Fprintln(inv.stdout, "Image specification is unchanged.")
		inv.rebooted = *apply && c.staged != nil
		return nil
	}
	if *enforce {
		if err := policyRefusesEnforcement(); err != nil {
			return fmt.Errorf("Switching: Pulling: %w", err)
		}
	}
	img, err := inv.importer.Pull(inv.ctx, c.state, target)
	if err != nil {
		return fmt.Errorf("Switching: Pulling: Creating importer: %w", err)
	}
	if err := inv.stage(c, img, target, false); err != nil {
		return fmt.Errorf("Switching: %w", err)
	}
	inv.rebooted = *apply
	return nil
}

func (inv *invocation) cmdUpgrade(args []string) error {
	fs := newFlagSet("bootc upgrade")
	fs.Bool("quiet", false, "Don't display progress")
	check := fs.Bool("check", false, "Check for an update without applying it")
	apply := fs.Bool("apply", false, "Reboot into the new target image")
	downloadOnly := fs.Bool("download-only", false, "Stage without applying on reboot")
	fromDownloaded := fs.Bool("from-downloaded", false, "Apply a download-only staged deployment")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usage(fs.verb, "unexpected argument '%s' found", pos[0])
	}
	if err := fs.conflicts([2]string{"check", "apply"}, [2]string{"check", "download-only"}, [2]string{"check", "from-downloaded"},
		[2]string{"download-only", "apply"}, [2]string{"download-only", "from-downloaded"}); err != nil {
		return err
	}
	if *check {
		return errors.New("Upgrading: --check (cached update metadata) is not modelled by the ostree test host")
	}
	unlock, err := inv.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := inv.current()
	if err != nil {
		return fmt.Errorf("Upgrading: %w", err)
	}
	if *fromDownloaded {
		// Unlock without contacting the registry.
		if c.staged == nil {
			return errors.New("Upgrading: No staged deployment found")
		}
		if err := inv.unlockStaged(c); err != nil {
			return err
		}
		inv.rebooted = *apply
		return nil
	}
	spec := c.host.Spec.Image
	if spec == nil {
		return errors.New("Upgrading: No image source specified")
	}
	if spec.EnforcesContainerPolicy() {
		if err := policyRefusesEnforcement(); err != nil {
			return fmt.Errorf("Upgrading: %w", err)
		}
	}
	img, err := inv.importer.Pull(inv.ctx, c.state, *spec)
	if err != nil {
		return fmt.Errorf("Upgrading: Preparing import: Fetching manifest: %w", err)
	}
	return inv.upgradeTo(c, img, *spec, *downloadOnly, *apply)
}

// upgradeTo follows bootc's upgrade outcomes in code order once the image
// is pulled: staged unchanged (locking or unlocking it), no update, stage.
func (inv *invocation) upgradeTo(c *current, img *Imported, spec bootc.ImageReference, downloadOnly, apply bool) error {
	if staged := c.host.Status.Staged; staged != nil && staged.Digest() == img.Digest {
		switch {
		case downloadOnly && !c.state.FinalizationLocked:
			if err := setFinalizationLock(true); err != nil {
				return err
			}
			fmt.Fprintln(inv.stdout, "Image downloaded, but will not be applied on reboot")
		case !downloadOnly && c.state.FinalizationLocked:
			if err := setFinalizationLock(false); err != nil {
				return err
			}
			fmt.Fprintln(inv.stdout, "Staged deployment will now be applied on reboot")
		}
		fmt.Fprintln(inv.stdout, "Staged update present, not changed")
		inv.rebooted = apply
		return nil
	}
	if c.host.Status.Booted.Digest() == img.Digest {
		fmt.Fprintln(inv.stdout, "No update available.")
		return nil
	}
	if err := inv.stage(c, img, spec, downloadOnly); err != nil {
		return fmt.Errorf("Upgrading: %w", err)
	}
	if downloadOnly {
		fmt.Fprintln(inv.stdout, "Image downloaded, but will not be applied on reboot")
	}
	inv.rebooted = apply
	return nil
}

func (inv *invocation) unlockStaged(c *current) error {
	if !c.state.FinalizationLocked {
		fmt.Fprintln(inv.stdout, "Staged deployment is already set to apply on reboot")
		return nil
	}
	if err := setFinalizationLock(false); err != nil {
		return err
	}
	fmt.Fprintln(inv.stdout, "Staged deployment will now be applied on reboot")
	return nil
}

// cmdRollback is bootc's deploy::rollback: one write_deployments call
// that swaps booted and rollback (or swaps them back when a rollback is
// queued), leaves the others in place and drops the staged deployment.
// Nothing is deployed again and /etc is not merged.
func (inv *invocation) cmdRollback(args []string) error {
	fs := newFlagSet("bootc rollback")
	apply := fs.Bool("apply", false, "Reboot into the rollback image")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usage(fs.verb, "unexpected argument '%s' found", pos[0])
	}
	unlock, err := inv.lock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := inv.current()
	if err != nil {
		return fmt.Errorf("Rollback: %w", err)
	}
	reverting := c.host.Status.RollbackQueued
	if reverting {
		fmt.Fprintln(inv.stdout, "notice: Reverting queued rollback state")
	}
	if c.rollbk == nil {
		return errors.New("No rollback available")
	}
	if c.host.Status.Rollback.Image == nil {
		return errors.New("Rollback is not container image based")
	}
	order := []Deployment{*c.rollbk, *c.booted}
	if reverting {
		order = []Deployment{*c.booted, *c.rollbk}
	}
	if err := inv.sysroot.WriteDeployments(inv.ctx, append(order, c.others...)); err != nil {
		return fmt.Errorf("Rollback: %w", err)
	}
	if reverting {
		fmt.Fprintln(inv.stdout, "Next boot: current deployment")
	} else {
		fmt.Fprintln(inv.stdout, "Next boot: rollback deployment")
	}
	if err := writeRebootRequired(c.host.Status.Rollback.Digest()); err != nil {
		return err
	}
	inv.rebooted = *apply
	return nil
}

// policyRefusesEnforcement mirrors bootc's guard for
// --enforce-container-sigpolicy: a containers-policy.json whose default is
// only insecureAcceptAnything is refused. (Signatures themselves are
// verified by bootsync, not by this stand-in.)
func policyRefusesEnforcement() error {
	// Only the host's /etc: the booted /usr is overlaid on the test
	// machine's, whose /usr/share must not leak in.
	const p = "/etc/containers/policy.json"
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	var policy struct {
		Default []struct {
			Type string `json:"type"`
		} `json:"default"`
	}
	if err := json.Unmarshal(data, &policy); err != nil {
		return fmt.Errorf("parsing %s: %w", p, err)
	}
	if len(policy.Default) == 1 && policy.Default[0].Type == "insecureAcceptAnything" {
		return errors.New("containers-policy.json specifies a default of `insecureAcceptAnything`; refusing usage")
	}
	return nil
}
