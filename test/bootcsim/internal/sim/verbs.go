package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bootsync/bootsync/apply/bootc"
)

// Releases that changed behaviour the simulator reproduces.
var (
	rebootRequiredSince     = bootc.Version{Major: 1, Minor: 9}            // writes /run/reboot-required
	unchangedApplySince     = bootc.Version{Major: 1, Minor: 16, Patch: 3} // switch --apply reboots into an existing staged deployment
	stagedMessageNoDotSince = bootc.Version{Major: 1, Minor: 12}           // "Staged update present, not changed" lost its period
)

// imgrefDisplay is bootc's `{:#}` rendering of an ImageReference: the bare
// image for unsigned registry references, else the ostree form.
func imgrefDisplay(r bootc.ImageReference) string {
	if r.Signature == nil && r.Transport == bootc.TransportRegistry {
		return r.Image
	}
	return ostreeImgref(r)
}

// ostreeImgref is the ostree-container reference bootc prints in upgrade
// --check output.
func ostreeImgref(r bootc.ImageReference) string {
	prefix := "docker://"
	if r.Transport != bootc.TransportRegistry {
		prefix = r.Transport + ":"
	}
	if r.EnforcesContainerPolicy() {
		return "ostree-image-signed:" + prefix + r.Image
	}
	return prefix + r.Image
}

func sameSpec(a, b bootc.ImageReference) bool {
	if a.Image != b.Image || a.Transport != b.Transport {
		return false
	}
	if (a.Signature == nil) != (b.Signature == nil) {
		return false
	}
	return a.Signature == nil || *a.Signature == *b.Signature
}

func (inv *invocation) cmdSwitch(args []string) error {
	v, err := inv.version()
	if err != nil {
		return err
	}
	fs := newFlagSet("bootc switch")
	quiet := fs.Bool("quiet", false, "Don't display progress")
	transport := fs.String("transport", bootc.TransportRegistry, "The transport; e.g. oci, oci-archive, containers-storage")
	enforce := new(bool)
	if v.SupportsSigPolicy() {
		enforce = fs.Bool("enforce-container-sigpolicy", false, "Refuse a containers-policy.json whose default is insecureAcceptAnything")
	}
	apply := new(bool)
	if v.SupportsSwitchApply() {
		apply = fs.Bool("apply", false, "Restart or reboot into the new target image")
	}
	softReboot := fs.softRebootFlag(v)
	fs.Bool("retain", false, "Retain reference to currently booted image")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	_ = quiet // progress bars only exist on a terminal; nothing to hide
	if err := checkSoftRebootValue(fs.verb, *softReboot); err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		return usage(fs.verb, "the following required arguments were not provided:\n  <TARGET>")
	case 1:
	default:
		return usage(fs.verb, "unexpected argument '%s' found", pos[1])
	}
	target := bootc.ImageReference{Image: pos[0], Transport: *transport}
	if *enforce {
		target.Signature = &bootc.ImageSignature{Kind: bootc.SignatureContainerPolicy}
	}

	s, release, err := inv.lockedState()
	if err != nil {
		return err
	}
	defer release()
	if s.Booted == nil {
		return errors.New("Switching: This command requires a booted host system (no booted bootc deployment)")
	}
	if cur := s.specImage(); cur != nil && sameSpec(*cur, target) {
		// Compared as a spec, before any pull.
		fmt.Fprintln(inv.stdout, "Image specification is unchanged.")
		if *apply && s.Staged != nil && v.AtLeast(unchangedApplySince) {
			return inv.rebootForApply(s)
		}
		return nil
	}
	if *enforce {
		if err := inv.policyRefusesEnforcement(); err != nil {
			return fmt.Errorf("Switching: Pulling: %w", err)
		}
	}
	img, err := inv.pull(target, inv.arch(s), true)
	if err != nil {
		return fmt.Errorf("Switching: Pulling: Creating importer: %w", err)
	}
	staged := s.newDeployment(target, img)
	if err := inv.stage(s, staged, v); err != nil {
		return err
	}
	return inv.finishStaging(s, *softReboot, *apply)
}

// stage queues d for the next boot and prints bootc's summary.
func (inv *invocation) stage(s *State, d *Deployment, v bootc.Version) error {
	s.Staged = d
	// ostree puts the staged deployment first and leaves the order of the
	// others alone until it is finalized: a queued rollback stays queued
	// in status (bootc compares the rollback's and the booted one's
	// indexes), but the staged deployment boots next (see reboot).
	// A soft reboot prepared for the previous staged deployment does not
	// carry over to this one.
	s.SoftRebootPrepared = false
	if err := inv.save(s); err != nil {
		return err
	}
	fmt.Fprintf(inv.stdout, "Queued for next boot: %s\n", imgrefDisplay(d.Image))
	if d.Version != nil {
		fmt.Fprintf(inv.stdout, "  Version: %s\n", *d.Version)
	}
	fmt.Fprintf(inv.stdout, "  Digest: %s\n", d.Digest)
	if v.AtLeast(rebootRequiredSince) {
		return inv.writeRebootRequired(d.Digest)
	}
	return nil
}

// finishStaging prepares a soft reboot if asked and reboots with --apply.
func (inv *invocation) finishStaging(s *State, softReboot string, apply bool) error {
	if err := inv.prepareSoftReboot(s, softReboot, s.Staged, "Staged"); err != nil {
		return err
	}
	if apply {
		return inv.rebootForApply(s)
	}
	return nil
}

// prepareSoftReboot models --soft-reboot: when the target is capable the
// next reboot becomes a soft one; "required" fails otherwise (after
// staging, like bootc).
func (inv *invocation) prepareSoftReboot(s *State, mode string, target *Deployment, what string) error {
	if mode == "" || target == nil {
		return nil
	}
	if s.softRebootCapable(target) {
		fmt.Fprintf(inv.stdout, "%s deployment is soft-reboot capable, preparing for soft-reboot...\n", what)
		s.SoftRebootPrepared = true
		return inv.save(s)
	}
	if mode == "required" {
		return fmt.Errorf("Soft reboot was required but %s deployment is not soft-reboot capable", lower(what))
	}
	return nil
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]|0x20) + s[1:]
}

// writeRebootRequired writes the kured-style marker bootc ≥ 1.9 writes.
func (inv *invocation) writeRebootRequired(digest string) error {
	p := filepath.Join(inv.cfg.Root, "run", "reboot-required")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing /run/reboot-required: %w", err)
	}
	if err := os.WriteFile(p, []byte("bootc: Reboot required for image: "+digest+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing /run/reboot-required: %w", err)
	}
	return nil
}

// rebootForApply reboots the simulated host; the process then dies by
// SIGKILL (see Outcome.Rebooted).
func (inv *invocation) rebootForApply(s *State) error {
	if err := inv.reboot(s); err != nil {
		return err
	}
	inv.rebooted = true
	return nil
}

func (inv *invocation) cmdUpgrade(args []string) error {
	v, err := inv.version()
	if err != nil {
		return err
	}
	fs := newFlagSet("bootc upgrade")
	fs.Bool("quiet", false, "Don't display progress")
	check := fs.Bool("check", false, "Check if an update is available without applying it")
	apply := new(bool)
	if v.SupportsUpgradeApply() {
		apply = fs.Bool("apply", false, "Restart or reboot into the new target image")
	}
	downloadOnly, fromDownloaded := new(bool), new(bool)
	if v.SupportsDownloadOnly() {
		downloadOnly = fs.Bool("download-only", false, "Download and stage the update without applying it on reboot")
		fromDownloaded = fs.Bool("from-downloaded", false, "Apply a staged deployment that was previously downloaded with --download-only")
	}
	softReboot := fs.softRebootFlag(v)
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 {
		return usage(fs.verb, "unexpected argument '%s' found", pos[0])
	}
	if err := fs.conflicts(
		[2]string{"check", "apply"},
		[2]string{"check", "download-only"},
		[2]string{"check", "from-downloaded"},
		[2]string{"check", "soft-reboot"},
		[2]string{"download-only", "apply"},
		[2]string{"download-only", "from-downloaded"},
	); err != nil {
		return err
	}
	if err := checkSoftRebootValue(fs.verb, *softReboot); err != nil {
		return err
	}

	s, release, err := inv.lockedState()
	if err != nil {
		return err
	}
	defer release()
	if s.Booted == nil {
		return errors.New("Upgrading: This command requires a booted host system (no booted bootc deployment)")
	}

	if *fromDownloaded {
		return inv.upgradeFromDownloaded(s, *softReboot, *apply)
	}

	spec := s.specImage()
	if spec == nil {
		return errors.New("Upgrading: No image source specified")
	}
	if spec.EnforcesContainerPolicy() {
		if err := inv.policyRefusesEnforcement(); err != nil {
			return fmt.Errorf("Upgrading: %w", err)
		}
	}
	img, err := inv.pull(*spec, inv.arch(s), !*check)
	if err != nil {
		return fmt.Errorf("Upgrading: Preparing import: Fetching manifest: %w", err)
	}

	if *check {
		return inv.upgradeCheck(s, spec, img)
	}

	if s.Staged != nil && img.Digest == s.Staged.Digest {
		return inv.upgradeStagedAgain(s, v, *downloadOnly, *softReboot, *apply)
	}
	if img.Digest == s.Booted.Digest {
		fmt.Fprintln(inv.stdout, "No update available.")
		return nil
	}
	return inv.upgradeStage(s, v, spec, img, *downloadOnly, *softReboot, *apply)
}

// upgradeStage stages img, a new image for the booted host's spec.
func (inv *invocation) upgradeStage(s *State, v bootc.Version, spec *bootc.ImageReference, img *pulledImage, downloadOnly bool, softReboot string, apply bool) error {
	staged := s.newDeployment(*spec, img)
	staged.DownloadOnly = downloadOnly
	if err := inv.stage(s, staged, v); err != nil {
		return err
	}
	if downloadOnly {
		fmt.Fprintln(inv.stdout, "Image downloaded, but will not be applied on reboot")
	}
	return inv.finishStaging(s, softReboot, apply)
}

// upgradeFromDownloaded unlocks a download-only staged deployment without
// contacting the registry.
func (inv *invocation) upgradeFromDownloaded(s *State, softReboot string, apply bool) error {
	if s.Staged == nil {
		return errors.New("Upgrading: No staged deployment found")
	}
	if s.Staged.DownloadOnly {
		s.Staged.DownloadOnly = false
		if err := inv.save(s); err != nil {
			return err
		}
		fmt.Fprintln(inv.stdout, "Staged deployment will now be applied on reboot")
	} else {
		fmt.Fprintln(inv.stdout, "Staged deployment is already set to apply on reboot")
	}
	return inv.finishStaging(s, softReboot, apply)
}

// upgradeCheck is `upgrade --check`: it records what the registry offers and
// says whether it is an update.
func (inv *invocation) upgradeCheck(s *State, spec *bootc.ImageReference, img *pulledImage) error {
	// Recorded on the booted deployment, even when it is the same
	// image (bootc's spec-booted-update-same-digest fixture).
	s.Booted.CachedUpdate = &bootc.ImageStatus{
		Image: *spec, Version: img.Version, Timestamp: img.Timestamp,
		ImageDigest: img.Digest, Architecture: img.Architecture,
	}
	if err := inv.save(s); err != nil {
		return err
	}
	if img.Digest == s.Booted.Digest || (s.Staged != nil && img.Digest == s.Staged.Digest) {
		fmt.Fprintf(inv.stdout, "No changes in: %s\n", ostreeImgref(*spec))
		return nil
	}
	fmt.Fprintf(inv.stdout, "Update available for: %s\n", ostreeImgref(*spec))
	if img.Version != nil {
		fmt.Fprintf(inv.stdout, "  Version: %s\n", *img.Version)
	}
	fmt.Fprintf(inv.stdout, "  Digest: %s\n", img.Digest)
	return nil
}

// upgradeStagedAgain is an upgrade to the image already staged: only the
// download-only lock may change.
func (inv *invocation) upgradeStagedAgain(s *State, v bootc.Version, downloadOnly bool, softReboot string, apply bool) error {
	switch {
	case downloadOnly && !s.Staged.DownloadOnly:
		s.Staged.DownloadOnly = true
		fmt.Fprintln(inv.stdout, "Image downloaded, but will not be applied on reboot")
	case !downloadOnly && s.Staged.DownloadOnly:
		// A plain upgrade unlocks a download-only deployment.
		s.Staged.DownloadOnly = false
		fmt.Fprintln(inv.stdout, "Staged deployment will now be applied on reboot")
	}
	if err := inv.save(s); err != nil {
		return err
	}
	if v.AtLeast(stagedMessageNoDotSince) {
		fmt.Fprintln(inv.stdout, "Staged update present, not changed")
	} else {
		fmt.Fprintln(inv.stdout, "Staged update present, not changed.")
	}
	return inv.finishStaging(s, softReboot, apply)
}

func (inv *invocation) cmdRollback(args []string) error {
	v, err := inv.version()
	if err != nil {
		return err
	}
	fs := newFlagSet("bootc rollback")
	apply := new(bool)
	if v.SupportsRollbackApply() {
		apply = fs.Bool("apply", false, "Restart or reboot into the rollback image")
	}
	softReboot := fs.softRebootFlag(v)
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 {
		return usage(fs.verb, "unexpected argument '%s' found", pos[0])
	}
	if err := checkSoftRebootValue(fs.verb, *softReboot); err != nil {
		return err
	}
	s, release, err := inv.lockedState()
	if err != nil {
		return err
	}
	defer release()
	if s.Booted == nil {
		return errors.New("Rollback: This command requires a booted host system (no booted bootc deployment)")
	}
	reverting := s.RollbackQueued
	if reverting {
		fmt.Fprintln(inv.stdout, "notice: Reverting queued rollback state")
	}
	if s.Rollback == nil {
		return errors.New("No rollback available")
	}
	// Rollback rewrites the deployment list without the staged one.
	s.Staged = nil
	s.RollbackQueued = !reverting
	s.SoftRebootPrepared = false
	if err := inv.save(s); err != nil {
		return err
	}
	next := s.Booted
	if reverting {
		fmt.Fprintln(inv.stdout, "Next boot: current deployment")
	} else {
		next = s.Rollback
		fmt.Fprintln(inv.stdout, "Next boot: rollback deployment")
	}
	if v.AtLeast(rebootRequiredSince) {
		if err := inv.writeRebootRequired(next.Digest); err != nil {
			return err
		}
	}
	if !reverting {
		if err := inv.prepareSoftReboot(s, *softReboot, s.Rollback, "Rollback"); err != nil {
			return err
		}
	}
	if *apply {
		return inv.rebootForApply(s)
	}
	return nil
}
