package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

// Action is one step the executor takes on the host.
type Action string

// Actions, in the order they can appear in a plan.
const (
	// ActionQuarantine records that the image the host last rebooted into
	// did not come up (it is not booted after the reboot), so it is never
	// tried again for this desired state.
	ActionQuarantine Action = "quarantine"
	// ActionRestage forgets a reboot whose staged update was never applied
	// (lost before finalization), so that the image is staged once more.
	ActionRestage Action = "restage"
	// ActionWriteEtc writes the /etc overlay. It comes first so that the
	// 3-way merge at finalization carries it into a staged deployment.
	ActionWriteEtc Action = "write-etc"
	// ActionVerify runs the health checks after a boot into a new image and
	// commits the update or rolls it back.
	ActionVerify Action = "verify"
	// ActionReleaseRebootSlot tells the FleetLock server this host is steady.
	ActionReleaseRebootSlot Action = "release-lock"
	// ActionCancelRollback reverts a queued `bootc rollback` that no longer
	// leads to the desired image.
	ActionCancelRollback Action = "cancel-rollback"
	// ActionSwitch stages the desired image: `bootc switch repo@digest`.
	ActionSwitch Action = "switch"
	// ActionRollback queues the rollback deployment, which is the desired
	// image: `bootc rollback` (no download).
	ActionRollback Action = "rollback"
	// ActionHoldStaged keeps a staged deployment from being applied by an
	// unexpected reboot outside the reboot policy (`upgrade --download-only`).
	ActionHoldStaged Action = "lock-staged"
	// ActionReleaseStaged lets the staged deployment apply on the next boot
	// (`upgrade --from-downloaded`).
	ActionReleaseStaged Action = "unlock-staged"
	// ActionAcquireRebootSlot takes a FleetLock reboot slot.
	ActionAcquireRebootSlot Action = "acquire-lock"
	// ActionReboot reboots into the staged or queued rollback deployment.
	ActionReboot Action = "reboot"
)

// State is where a plan leaves the host, as status.json, `bootsync plan`
// and the bootsync_state metric name it.
type State string

// Plan states.
const (
	StateConverged   State = "converged"   // the host runs the desired image and /etc
	StateUpdating    State = "updating"    // steps will change the host now
	StateWaiting     State = "waiting"     // staged, waiting for the reboot policy
	StateVerifying   State = "verifying"   // booted into the new image, checks pending
	StatePaused      State = "paused"      // update.paused: only drift is reported
	StateQuarantined State = "quarantined" // the desired image failed before; held
	StateUnmanaged   State = "unmanaged"   // not a bootc host
	StateRefused     State = "refused"     // the image policy refused the desired image
)

// Deployment is one bootc deployment, reduced to what planning needs.
type Deployment struct {
	ImageRef          string `json:"imageRef"` // the image spec bootc has (repo@sha256:…)
	Digest            string `json:"digest"`   // imageDigest: the manifest digest bootc booted
	DownloadOnly      bool   `json:"downloadOnly,omitempty"`
	SoftRebootCapable bool   `json:"softRebootCapable,omitempty"`
}

// Capabilities are the bootc features this host's version has.
type Capabilities struct {
	DownloadOnly bool // upgrade --download-only / --from-downloaded (≥ 1.12)
	SoftReboot   bool // --soft-reboot (≥ 1.7)
}

// Observed is what the agent saw on the host at the start of a pass.
type Observed struct {
	Booted, Staged, Rollback *Deployment
	RollbackQueued           bool
	// BootID changes at every boot; with the journal it tells whether a
	// reboot the agent asked for has happened.
	BootID       string
	Capabilities Capabilities
	// EtcChanges counts /etc files the overlay would create, change or
	// delete; drift in managed files is included.
	EtcChanges int
	// EtcRebootRequired: an /etc change whose onChange asks for a reboot
	// has not taken effect yet.
	EtcRebootRequired bool
	// UsersLoggedIn counts interactive sessions (update.deferRebootWhileUsers).
	UsersLoggedIn int
	// Arch is the booted image's architecture (for image indexes).
	Arch    string
	Now     time.Time
	Journal *Journal
}

// RebootWindow is a maintenance-window schedule (policy/window.Schedule).
type RebootWindow interface {
	Open(t time.Time) bool
	Next(t time.Time) (start, end time.Time)
}

// Desired is the host's desired state at one commit, bound to a digest.
type Desired struct {
	Commit string
	// ImageRef is what bootc is switched to: repo@digest, never a tag.
	ImageRef string
	// Digests are the digests bootc may report for ImageRef: the pinned
	// digest and, for an image index, the platform manifest's digest.
	Digests []string
	Update  hostspec.UpdatePolicy
	// Windows is the parsed update.windows (nil when none are declared).
	Windows RebootWindow
	// Endpoint is the repository that resolved the tag (a registries.conf
	// mirror or the primary); empty when no request was needed.
	Endpoint string
}

// Step is one action with its arguments.
type Step struct {
	Action Action `json:"action"`
	Ref    string `json:"ref,omitempty"`    // switch target
	Digest string `json:"digest,omitempty"` // image the step concerns
	Soft   bool   `json:"soft,omitempty"`   // reboot: userspace only
	Reason string `json:"reason,omitempty"` // why, for logs and `bootsync plan`
}

// Plan is what a pass will do and why.
type Plan struct {
	State  State  `json:"state"`
	Reason string `json:"reason"`
	Steps  []Step `json:"steps"`
}

// Has reports whether the plan contains action a.
func (p *Plan) Has(a Action) bool {
	return slices.ContainsFunc(p.Steps, func(s Step) bool { return s.Action == a })
}

func (d *Desired) matches(dep *Deployment) bool {
	return dep != nil && slices.Contains(d.Digests, dep.Digest)
}

// Decide is the planner: a pure function from desired and observed state to
// the ordered steps of one pass. The agent, `bootsync plan` and tests all use
// it, so what a dry run shows is what a pass does.
func Decide(d Desired, o Observed) Plan {
	j := o.Journal
	if j == nil {
		j = &Journal{}
	}
	if o.Booted == nil {
		return Plan{State: StateUnmanaged, Reason: "bootc reports no booted deployment: this is not a bootc host", Steps: []Step{}}
	}
	p := Plan{Steps: []Step{}}

	// An automatic rollback after a failed verification was interrupted
	// before its reboot: finish it, whatever the reboot policy says.
	if pend := j.Pending; pend != nil && pend.Kind == pendingAutoRollback && !rebooted(pend, o) {
		p.finishAutoRollback(pend, o)
		return p
	}

	// A reboot this agent asked for has happened (the boot ID changed).
	if pend := j.Pending; pend != nil && pend.Kind != pendingAutoRollback && rebooted(pend, o) {
		var verifying bool
		if j, verifying = p.decideAfterReboot(d, o, j, pend); verifying {
			return p
		}
	}

	if d.Update.Paused {
		p.State, p.Reason = StatePaused, "update.paused is set: nothing is changed"
		if o.EtcChanges > 0 {
			p.Reason += fmt.Sprintf("; %d /etc file(s) differ from the spec", o.EtcChanges)
		}
		return p
	}
	if o.EtcChanges > 0 {
		p.add(Step{Action: ActionWriteEtc, Reason: fmt.Sprintf("%d /etc file(s) differ from the spec", o.EtcChanges)})
	}

	if d.matches(o.Booted) {
		p.decideOnDesired(d, o, j)
		return p
	}

	if q := j.quarantined(d.Digests); q != "" {
		p.State = StateQuarantined
		p.Reason = fmt.Sprintf("image %s is quarantined (%s); fix the fleet repo or run `bootsync unquarantine`", short(q), j.Quarantine[q].Reason)
		return p
	}

	p.decideMove(d, o, j)
	if p.State == "" {
		p.State = StateUpdating
	}
	return p
}

// finishAutoRollback plans the rest of an interrupted automatic rollback.
func (p *Plan) finishAutoRollback(pend *PendingReboot, o Observed) {
	if !o.RollbackQueued {
		p.add(Step{Action: ActionRollback, Digest: pend.Digests[0], Reason: "finish the automatic rollback"})
	}
	p.add(Step{Action: ActionReboot, Digest: pend.Digests[0], Reason: "finish the automatic rollback"})
	p.State, p.Reason = StateQuarantined, "rolling back after a failed update"
}

// decideAfterReboot plans what follows a reboot this agent asked for. It
// reports verifying when the host booted into the image and the plan is
// complete; otherwise it returns the journal as the rest of Decide should
// see it (the pending change restaged or quarantined).
func (p *Plan) decideAfterReboot(d Desired, o Observed, j *Journal, pend *PendingReboot) (_ *Journal, verifying bool) {
	if slices.Contains(pend.Digests, o.Booted.Digest) {
		if o.EtcChanges > 0 && !d.Update.Paused {
			p.add(Step{Action: ActionWriteEtc, Reason: "re-apply /etc before checking health"})
		}
		p.add(Step{Action: ActionVerify, Digest: o.Booted.Digest, Reason: "booted into " + short(o.Booted.Digest) + "; run health checks"})
		p.State, p.Reason = StateVerifying, "verifying the new image"
		return j, true
	}
	if updateLost(pend, o) && j.Restaged != pend.Digests[0] {
		// The staged deployment never became a boot entry (power was
		// lost before ostree finalized it at shutdown): the image was
		// not tried, so it is not quarantined; it is staged once more.
		p.add(Step{Action: ActionRestage, Digest: pend.Digests[0],
			Reason: fmt.Sprintf("rebooted to apply %s, but the staged update was not applied (the shutdown did not finalize it); staging it once more", short(pend.Digests[0]))})
		return j.withoutPending(), false
	}
	// Rebooted, but not into the image: the boot fell back, or the
	// update was lost a second time. Never reboot twice for the
	// same failed change.
	p.add(Step{Action: ActionQuarantine, Digest: pend.Digests[0], Reason: notBootedReason(pend, o)})
	return j.withQuarantine(pend.Digests[0]), false
}

// decideOnDesired plans for a host already booted into the desired image.
func (p *Plan) decideOnDesired(d Desired, o Observed, j *Journal) {
	if o.RollbackQueued {
		// Someone queued a rollback away from the desired image.
		p.add(Step{Action: ActionCancelRollback, Reason: "a queued rollback would leave the desired image"})
	}
	if j.FleetLockHeld && j.Pending == nil {
		p.add(Step{Action: ActionReleaseRebootSlot, Reason: "the host is steady on the desired image"})
	}
	p.State, p.Reason = StateConverged, "booted image is the desired image"
	if q := j.quarantined(d.Digests); q != "" {
		// Verification failed and no automatic rollback was possible.
		p.State = StateQuarantined
		p.Reason = fmt.Sprintf("running the desired image %s, which failed verification (%s) and could not be rolled back automatically", short(q), j.Quarantine[q].Reason)
	}
	if len(p.Steps) > 0 && p.Steps[0].Action == ActionWriteEtc && p.State == StateConverged {
		p.State, p.Reason = StateUpdating, "booted image is the desired image; /etc needs changes"
	}
	if o.EtcRebootRequired && !o.RollbackQueued && o.Staged == nil {
		p.addReboot(d, o, j, nil, "an /etc change needs a reboot to take effect")
	}
}

// decideMove plans moving the host to the desired image: through a queued
// or available rollback, a staged deployment, or a fresh switch.
func (p *Plan) decideMove(d Desired, o Observed, j *Journal) {
	switch {
	case o.RollbackQueued && d.matches(o.Rollback):
		p.addReboot(d, o, j, o.Rollback, "rollback to "+short(o.Rollback.Digest)+" is queued")
	case d.matches(o.Staged):
		if o.Staged.DownloadOnly {
			if ok, _ := rebootAllowed(d, o, j); ok {
				p.add(Step{Action: ActionReleaseStaged, Digest: o.Staged.Digest, Reason: "the reboot policy allows applying the staged image"})
			}
		}
		p.addReboot(d, o, j, o.Staged, short(o.Staged.Digest)+" is staged")
		if p.State == StateWaiting && !o.Staged.DownloadOnly && o.Capabilities.DownloadOnly {
			p.add(Step{Action: ActionHoldStaged, Digest: o.Staged.Digest, Reason: "keep an unplanned reboot from applying it"})
		}
	case d.matches(o.Rollback):
		if o.RollbackQueued {
			break // unreachable: handled above
		}
		p.add(Step{Action: ActionRollback, Digest: o.Rollback.Digest, Reason: "the desired image is the rollback deployment: no download"})
		p.addReboot(d, o, j, o.Rollback, "rollback to "+short(o.Rollback.Digest))
	default:
		if o.RollbackQueued {
			p.add(Step{Action: ActionCancelRollback, Reason: "the queued rollback is not the desired image"})
		}
		p.add(Step{Action: ActionSwitch, Ref: d.ImageRef, Digest: d.Digests[0], Reason: "stage the desired image"})
		p.addReboot(d, o, j, &Deployment{SoftRebootCapable: false}, "update to "+short(d.Digests[0]))
		if p.State == StateWaiting && o.Capabilities.DownloadOnly {
			p.add(Step{Action: ActionHoldStaged, Digest: d.Digests[0], Reason: "keep an unplanned reboot from applying it"})
		}
	}
}

// addReboot adds the reboot into target when the reboot policy allows it
// now, and otherwise leaves the plan waiting with the policy's reason.
func (p *Plan) addReboot(d Desired, o Observed, j *Journal, target *Deployment, why string) {
	ok, wait := rebootAllowed(d, o, j)
	if !ok {
		p.State, p.Reason = StateWaiting, why+"; "+wait
		return
	}
	if needsFleetLock(d.Update.Reboot) {
		p.add(Step{Action: ActionAcquireRebootSlot, Reason: "take a FleetLock reboot slot"})
	}
	// Soft reboots go into a staged deployment only: bootc prepares
	// one with `upgrade --apply --soft-reboot=auto`; a queued rollback
	// reboots fully.
	soft := d.Update.SoftReboot && o.Capabilities.SoftReboot && target != nil && target.SoftRebootCapable && target == o.Staged
	p.add(Step{Action: ActionReboot, Digest: d.Digests[0], Soft: soft, Reason: why})
	p.State, p.Reason = StateUpdating, why
}

func (p *Plan) add(s Step) { p.Steps = append(p.Steps, s) }

// updateLost reports whether the update a reboot was for never reached a
// boot entry: the host booted the image it ran before, and the target is
// neither the rollback deployment (which it would be had it booted and
// fallen back) nor staged. ostree finalizes a staged deployment at
// shutdown; a power cut or crash before that discards it.
func updateLost(pend *PendingReboot, o Observed) bool {
	if pend.Kind != pendingUpdate || pend.From == "" || o.Booted.Digest != pend.From {
		return false
	}
	for _, dep := range []*Deployment{o.Rollback, o.Staged} {
		if dep != nil && slices.Contains(pend.Digests, dep.Digest) {
			return false
		}
	}
	return true
}

func notBootedReason(pend *PendingReboot, o Observed) string {
	why := fmt.Sprintf("rebooted to apply %s but booted %s", short(pend.Digests[0]), short(o.Booted.Digest))
	if updateLost(pend, o) {
		why += "; the staged update was not applied at two reboots"
	}
	return why
}

func needsFleetLock(s hostspec.RebootStrategy) bool {
	return s == hostspec.RebootFleetLock || s == hostspec.RebootWindowFleetLock
}

// rebootAllowed applies update.reboot, the windows and logged-in users.
func rebootAllowed(d Desired, o Observed, j *Journal) (bool, string) {
	switch d.Update.Reboot {
	case hostspec.RebootManual:
		if j.RebootRequested {
			break
		}
		return false, "update.reboot is manual: run `bootsync reboot` to apply"
	case hostspec.RebootWindow, hostspec.RebootWindowFleetLock:
		if d.Windows == nil {
			return false, "update.reboot needs update.windows, and none are declared"
		}
		if !d.Windows.Open(o.Now) {
			start, _ := d.Windows.Next(o.Now)
			return false, "the maintenance window opens " + start.Format("Mon 2006-01-02 15:04 MST")
		}
	}
	// An operator's `bootsync reboot` is not held back by their own session.
	if d.Update.DeferRebootWhileUsers && o.UsersLoggedIn > 0 && !j.RebootRequested {
		since := j.UsersDeferredSince
		max := time.Duration(d.Update.MaxDeferral)
		if since.IsZero() || o.Now.Sub(since) < max {
			return false, fmt.Sprintf("%d user session(s) open; deferring the reboot (at most %s)", o.UsersLoggedIn, max)
		}
	}
	return true, ""
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
