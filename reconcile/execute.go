package reconcile

import (
	"net/http"

	"context"
	"errors"
	"fmt"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"os/exec"
	"strings"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy/fleetlock"
	"github.com/bootsync/bootsync/policy/health"
	"github.com/bootsync/bootsync/registry"
)

// execution carries out one plan. Every step that changes the host is
// journalled before it starts and after it ends.
type execution struct {
	a       *Agent
	j       *Journal
	obs     Observed
	desired Desired
	spec    *hostspec.HostSpec
	etcPlan *etcoverlay.Plan
	res     *PassResult
	st      *Status
}

func (e *execution) run(ctx context.Context) error {
	for _, step := range e.res.Plan.Steps {
		e.a.log.Info("step", "action", step.Action, "digest", step.Digest, "reason", step.Reason)
		var err error
		switch step.Action {
		case ActionQuarantine:
			err = e.quarantine(step.Digest, step.Reason, "", "")
			if err == nil {
				e.j.Pending = nil
				err = e.save()
			}
		case ActionRestage:
			e.a.log.Warn("the staged update was not applied at the reboot; staging it once more", "digest", step.Digest)
			e.j.Restaged, e.j.Pending = step.Digest, nil
			err = e.save()
		case ActionWriteEtc:
			err = e.writeEtc(ctx)
		case ActionVerify:
			return e.verify(ctx)
		case ActionReleaseRebootSlot:
			err = e.releaseRebootSlot(ctx)
		case ActionCancelRollback, ActionRollback:
			err = e.bootcStep(ctx, step, "rollback", func() error {
				_, err := e.a.deps.Bootc.Rollback(ctx, bootc.RollbackOptions{})
				return err
			})
		case ActionSwitch:
			err = e.bootcStep(ctx, step, "switch", func() error {
				_, err := e.a.deps.Bootc.Switch(ctx, step.Ref, bootc.SwitchOptions{EnforceSigPolicy: e.a.cfg.Trust.RequireSignatures, Quiet: true})
				return err
			})
		case ActionHoldStaged:
			err = e.bootcStep(ctx, step, "lock-staged", func() error {
				_, err := e.a.deps.Bootc.Upgrade(ctx, bootc.UpgradeOptions{DownloadOnly: true, Quiet: true})
				if errors.Is(err, bootc.ErrUnsupported) {
					return nil // older bootc: the staged image stays unlocked
				}
				return err
			})
		case ActionReleaseStaged:
			err = e.bootcStep(ctx, step, "unlock-staged", func() error {
				_, err := e.a.deps.Bootc.Upgrade(ctx, bootc.UpgradeOptions{FromDownloaded: true, Quiet: true})
				return err
			})
		case ActionAcquireRebootSlot:
			var granted bool
			granted, err = e.acquireRebootSlot(ctx)
			if err == nil && !granted {
				return nil // waiting for a slot; the plan state says why
			}
		case ActionReboot:
			return e.reboot(ctx, step)
		default:
			err = fmt.Errorf("unknown step %q", step.Action)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *execution) save() error {
	if err := e.a.journal.Save(e.j); err != nil {
		return &PassError{Reason: ReasonState, Err: err}
	}
	return nil
}

// bootcStep runs one bootc mutation between journal records.
func (e *execution) bootcStep(ctx context.Context, step Step, point string, run func() error) error {
	e.j.Intent = &Intent{Action: step.Action, Digest: step.Digest, Commit: e.desired.Commit, Started: e.a.now()}
	if err := e.save(); err != nil {
		return err
	}
	e.a.fault("before-" + point)
	if err := run(); err != nil {
		return &PassError{Reason: ReasonBootc, Err: fmt.Errorf("%s: %w", step.Action, err)}
	}
	e.a.fault("after-" + point)
	e.j.Intent = nil
	return e.save()
}

func (e *execution) writeEtc(ctx context.Context) error {
	e.a.fault("before-write-etc")
	w := e.a.deps.Etc
	p := e.etcPlan
	res, err := w.Apply(ctx, p)
	if errors.Is(err, etcoverlay.ErrStalePlan) {
		// Something changed /etc since the plan: plan again, once.
		if p, err = w.Plan(ctx, e.spec.Etc); err == nil {
			res, err = w.Apply(ctx, p)
		}
	}
	if err != nil {
		return &PassError{Reason: ReasonEtc, Err: fmt.Errorf("write /etc: %w", err)}
	}
	for _, c := range res.Applied {
		e.a.log.Info("etc", "change", c.Kind, "path", c.Path, "reason", c.Reason)
	}
	e.a.fault("after-write-etc")
	if err := w.RunOnChange(ctx, res); err != nil {
		// The files are in place; the restart stays owed and is retried
		// on the next pass.
		e.a.log.Error("etc onChange", "err", err)
		e.st.Warnings = append(e.st.Warnings, "onChange: "+err.Error())
	}
	return nil
}

func (e *execution) fleetlockClient() (*fleetlock.Client, error) {
	fl := e.desired.Update.FleetLock
	if fl == nil || fl.URL == "" {
		return nil, &PassError{Reason: ReasonInvalidRepo, Err: fmt.Errorf("host %s: update.reboot %q needs update.fleetlock.url", e.a.cfg.Host, e.desired.Update.Reboot)}
	}
	id, err := fleetlock.MachineID(e.a.cfg.Root)
	if err != nil {
		return nil, &PassError{Reason: ReasonFleetLock, Err: err}
	}
	c, err := fleetlock.New(fl.URL, fl.Group, id, fleetlock.WithTimeout(e.a.cfg.NetworkTimeout),
		fleetlock.WithHTTPClient(&http.Client{Transport: netdeadline.Transport(e.a.cfg.NetworkTimeout)}))
	if err != nil {
		return nil, &PassError{Reason: ReasonFleetLock, Err: err}
	}
	return c, nil
}

// acquireRebootSlot takes a reboot slot. A refusal is not an error: the host
// waits and asks again on a later pass.
func (e *execution) acquireRebootSlot(ctx context.Context) (bool, error) {
	c, err := e.fleetlockClient()
	if err != nil {
		return false, err
	}
	e.a.fault("before-acquire-lock")
	err = c.PreReboot(ctx)
	var refused *fleetlock.Error
	if errors.As(err, &refused) {
		e.res.Plan.State = StateWaiting
		e.res.Plan.Reason = fmt.Sprintf("FleetLock has no reboot slot now (%s: %s)", refused.Kind, refused.Value)
		e.st.RebootPending = true
		return false, nil
	}
	if err != nil {
		return false, &PassError{Reason: ReasonFleetLock, Err: fmt.Errorf("FleetLock pre-reboot: %w", err)}
	}
	e.j.FleetLockHeld = true
	if err := e.save(); err != nil {
		return false, err
	}
	e.a.fault("after-acquire-lock")
	return true, nil
}

func (e *execution) releaseRebootSlot(ctx context.Context) error {
	c, err := e.fleetlockClient()
	if err != nil {
		return err
	}
	if err := c.SteadyState(ctx); err != nil {
		return &PassError{Reason: ReasonFleetLock, Err: fmt.Errorf("FleetLock steady-state: %w", err)}
	}
	e.j.FleetLockHeld = false
	return e.save()
}

// reboot records what the reboot is for, then reboots. It returns only
// when the reboot could not be started or did not happen.
func (e *execution) reboot(ctx context.Context, step Step) error {
	if p := e.j.Pending; p == nil || p.Kind != pendingAutoRollback {
		kind := pendingUpdate
		switch {
		case e.obs.RollbackQueued || e.res.Plan.Has(ActionRollback):
			kind = pendingRollback
		case e.desired.matches(e.obs.Booted):
			kind = pendingEtc
		}
		e.j.Pending = &PendingReboot{
			Kind: kind, Digests: e.desired.Digests, ImageRef: e.desired.ImageRef, Commit: e.desired.Commit,
			BootID: e.obs.BootID, Soft: step.Soft, At: e.a.now(), From: e.obs.Booted.Digest,
			Health: e.spec.Health, Update: e.spec.Update,
		}
	}
	e.j.RebootRequested = false
	e.j.UsersDeferredSince = time.Time{}
	e.j.Intent = &Intent{Action: ActionReboot, Digest: step.Digest, Commit: e.desired.Commit, Started: e.a.now()}
	if err := e.save(); err != nil {
		return err
	}
	e.a.fault("before-reboot")
	e.res.Rebooting = true
	e.st.RebootPending = true
	soft := step.Soft || e.softAfterSwitch(ctx)
	e.a.log.Info("rebooting", "digest", step.Digest, "soft", soft)
	if soft {
		_, err := e.a.deps.Bootc.Upgrade(ctx, bootc.UpgradeOptions{Apply: true, SoftReboot: bootc.SoftRebootAuto, Quiet: true})
		if err == nil || errors.Is(err, bootc.ErrRebooting) {
			return e.awaitShutdown(ctx)
		}
		return &PassError{Reason: ReasonReboot, Err: fmt.Errorf("soft reboot: %w", err)}
	}
	return e.rebootCommand(ctx)
}

func (e *execution) rebootCommand(ctx context.Context) error {
	if err := e.a.startReboot(ctx); err != nil {
		return &PassError{Reason: ReasonReboot, Err: err}
	}
	return e.awaitShutdown(ctx)
}

// runRebootCommand starts the reboot with Config.RebootCommand.
func (a *Agent) runRebootCommand(ctx context.Context) error {
	argv := a.cfg.RebootCommand
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("reboot: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// softAfterSwitch tells whether the image this pass just staged may be
// entered with a soft reboot: the planner could not know before staging it.
func (e *execution) softAfterSwitch(ctx context.Context) bool {
	u := e.desired.Update
	if !u.SoftReboot || !e.obs.Capabilities.SoftReboot || !e.res.Plan.Has(ActionSwitch) {
		return false
	}
	host, err := e.a.deps.Bootc.Status(ctx)
	if err != nil || host.Status.Staged == nil {
		return false
	}
	staged := deployment(host.Status.Staged)
	return staged != nil && e.desired.matches(staged) && staged.SoftRebootCapable && !staged.DownloadOnly
}

// awaitShutdown waits to be stopped by the shutdown the reboot started.
func (e *execution) awaitShutdown(ctx context.Context) error {
	t := time.NewTimer(e.a.cfg.RebootWait)
	defer t.Stop()
	select {
	case <-e.a.stopping:
		return nil // SIGTERM from the shutdown: stop at once, do not hold it up
	case <-ctx.Done():
		return nil // stopped by the shutdown, as expected
	case <-t.C:
		return &PassError{Reason: ReasonReboot, Err: fmt.Errorf("the reboot command returned but the host did not reboot within %s", e.a.cfg.RebootWait)}
	}
}

func (e *execution) quarantine(digest, reason, check, output string) error {
	if e.j.Quarantine == nil {
		e.j.Quarantine = map[string]QuarantineEntry{}
	}
	e.j.Quarantine[digest] = QuarantineEntry{Digest: digest, Commit: e.desired.Commit, Reason: reason, Check: check, Output: output, At: e.a.now()}
	e.a.log.Error("image quarantined", "digest", digest, "reason", reason, "check", check)
	return e.save()
}

// verify runs the health checks after a boot into a new image. Green: the
// update is committed and the FleetLock slot released. Red at the end of
// the grace period: the image is quarantined and the host rolls back and
// reboots, keeping its slot so the fleet stops rebooting more hosts.
func (e *execution) verify(ctx context.Context) error {
	p := e.j.Pending
	if p.SeenAt.IsZero() {
		p.SeenAt = e.a.now()
		if err := e.save(); err != nil {
			return err
		}
	}
	e.a.fault("before-verify")
	report, err := e.runChecks(ctx, p)
	if err != nil {
		return &PassError{Reason: ReasonHealth, Err: fmt.Errorf("health checks gave no verdict: %w", err)}
	}
	e.res.Health = &report
	e.st.Health = healthStatus(e.obs.Booted.Digest, e.a.now(), report)
	// Record the verdict before acting on it, so status keeps it even if
	// the agent dies right after.
	if err := e.a.status.Save(e.st); err != nil {
		return &PassError{Reason: ReasonState, Err: err}
	}
	if report.OK || p.Kind == pendingEtc {
		// A reboot for an /etc change keeps the image: there is nothing
		// to roll back to, so its checks are reported only.
		e.a.log.Info("update verified", "digest", e.obs.Booted.Digest, "kind", p.Kind)
		e.j.Pending, e.j.Restaged = nil, ""
		e.j.Committed = e.obs.Booted.Digest
		if err := e.save(); err != nil {
			return err
		}
		e.a.fault("after-verify")
		e.res.Plan.State, e.res.Plan.Reason = StateConverged, "the new image passed its health checks"
		if e.j.FleetLockHeld {
			return e.releaseRebootSlot(ctx)
		}
		return nil
	}

	failed := report.Failed()
	for _, f := range failed {
		e.a.deps.Metrics.checkFailed(f.Name)
		e.a.log.Error("health check failed", "check", f.Name, "error", f.Error, "output", f.Output)
	}
	first := failed[0]
	reason := fmt.Sprintf("health check %s failed after the update: %s", first.Name, first.Error)
	e.j.FailedBoot = e.obs.BootID
	if err := e.quarantine(p.Digests[0], reason, first.Name, first.Output); err != nil {
		return err
	}
	healthErr := &PassError{Reason: ReasonHealth, Err: report.Err()}
	if e.obs.Rollback == nil || e.obs.Rollback.Digest != p.From {
		e.j.Pending = nil
		if err := e.save(); err != nil {
			return err
		}
		return &PassError{Reason: ReasonHealth, Err: fmt.Errorf("%w; cannot roll back automatically: the rollback deployment is not the image booted before the update", report.Err())}
	}
	e.j.Pending = &PendingReboot{Kind: pendingAutoRollback, Digests: []string{p.From}, ImageRef: e.obs.Rollback.ImageRef,
		Commit: p.Commit, BootID: e.obs.BootID, At: e.a.now(), From: e.obs.Booted.Digest}
	if err := e.save(); err != nil {
		return err
	}
	e.a.fault("after-verify")
	e.res.Plan.State, e.res.Plan.Reason = StateQuarantined, reason+"; rolling back"
	if err := e.bootcStep(ctx, Step{Action: ActionRollback, Digest: p.From}, "rollback", func() error {
		_, err := e.a.deps.Bootc.Rollback(ctx, bootc.RollbackOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := e.reboot(ctx, Step{Action: ActionReboot, Digest: p.From}); err != nil {
		return err
	}
	return healthErr
}

// runChecks runs the spec's checks plus the management-plane checks: after
// an update the host must still reach its Git remote and its registry.
func (e *execution) runChecks(ctx context.Context, p *PendingReboot) (health.Report, error) {
	checks, err := health.FromSpecs(p.Health)
	if err != nil {
		return health.Report{}, err
	}
	reg := registryHost(p.ImageRef)
	mp, err := health.ManagementPlane(e.a.cfg.GitRemote, e.a.deps.Source.Ping,
		reg, func(ctx context.Context) error { return e.a.deps.Registry.Ping(ctx, p.ImageRef) })
	if err != nil {
		return health.Report{}, err
	}
	grace := time.Duration(p.Update.Grace)
	// The built-in probes are spread over the grace period, so their
	// verdict comes when the spec's own checks' does.
	for i := range mp {
		mp[i].Interval = min(max(grace/time.Duration(mp[i].Retries+1), time.Second), mp[i].Interval)
	}
	runner, err := health.NewRunner(health.WithSystemctl(e.a.cfg.Systemctl))
	if err != nil {
		return health.Report{}, err
	}
	return runner.Run(ctx, append(checks, mp...), p.SeenAt.Add(grace))
}

func registryHost(ref string) string {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Context().RegistryStr()
}

func healthStatus(digest string, at time.Time, r health.Report) *HealthStatus {
	hs := &HealthStatus{Digest: digest, Time: at, Passed: r.OK}
	for _, c := range r.Results {
		out := c.Output
		if c.Error != "" && !c.OK {
			out = strings.TrimSpace(c.Error + "\n" + c.Output)
		}
		hs.Checks = append(hs.Checks, CheckStatus{Name: c.Name, Required: c.Required, OK: c.OK, Attempts: c.Attempts, Output: out})
	}
	return hs
}
