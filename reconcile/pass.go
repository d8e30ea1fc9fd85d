package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy"
)

// pass is one reconcile pass in its phases: observe, resolve, plan /etc,
// decide, gate, execute and settle the journal.
func (a *Agent) pass(ctx context.Context, opts PassOptions, j *Journal, st *Status) (*PassResult, error) {
	res := &PassResult{Plan: Plan{Steps: []Step{}}}
	defer a.recordManaged(ctx, st)

	obs, err := a.observeForPass(ctx, opts, j, st, res)
	if err != nil {
		return res, err
	}
	a.fault("observed")

	r, err := a.resolveForPass(ctx, opts, j, obs, st, res)
	if err != nil {
		return res, err
	}
	a.fault("resolved")

	if r.ferr == nil {
		if r.spec, err = a.decryptSecrets(ctx, r.spec, r.desired.Commit); err != nil {
			res.Plan = Plan{State: StateRefused, Reason: "a secret of the spec cannot be opened on this host; nothing was changed", Steps: []Step{}}
			return res, err
		}
	}

	// /etc: what would change, and drift.
	var etcPlan *etcoverlay.Plan
	if r.ferr == nil {
		if etcPlan, err = a.planEtcForPass(ctx, r.spec, &obs, st, res); err != nil {
			return res, err
		}
	}

	plan := Decide(r.desired, obs)
	res.Plan = plan
	st.RebootPending = plan.State == StateWaiting || plan.Has(ActionReboot)
	if opts.DryRun {
		return res, nil
	}
	if plan.State == StateWaiting {
		a.noteDeferral(j, r.desired, obs)
	}

	// gate: an image is verified before anything makes the host boot it.
	if needsVerdict(plan) {
		if r.verifier == nil {
			return res, r.ferr // working from the journal: nothing new may be booted
		}
		if err := a.gate(ctx, r.spec, r.verifier, r.desired, res); err != nil {
			res.Plan = Plan{State: StateRefused, Reason: "the desired image was refused; nothing was changed", Steps: []Step{}}
			st.RebootPending = false
			return res, err
		}
	}
	a.fault("gated")

	ex := &execution{a: a, j: j, obs: obs, desired: r.desired, spec: r.spec, etcPlan: etcPlan, res: res, st: st}
	if err := ex.run(ctx); err != nil {
		return res, err
	}
	if r.ferr != nil {
		return res, r.ferr
	}
	if err := a.settlePass(j, obs, r.desired); err != nil {
		return res, err
	}
	return res, nil
}

// recordManaged lists the /etc files bootsync manages in the status, as
// they are at the end of the pass.
func (a *Agent) recordManaged(ctx context.Context, st *Status) {
	if managed, err := a.deps.Etc.Managed(ctx); err == nil {
		for _, m := range managed {
			st.Managed = append(st.Managed, ManagedFile{Path: m.Path, SHA256: m.SHA256})
		}
	}
}

// observeForPass observes the host, refuses to act beside another updater
// or on a host that is not bootc, and, outside a dry run, settles an
// automatic rollback and records the first known-good image.
func (a *Agent) observeForPass(ctx context.Context, opts PassOptions, j *Journal, st *Status, res *PassResult) (Observed, error) {
	obs, err := a.observe(ctx, j)
	if err != nil {
		return obs, err
	}
	st.Booted, st.Staged, st.Rollback, st.RollbackQueued = obs.Booted, obs.Staged, obs.Rollback, obs.RollbackQueued
	if err := a.checkOtherUpdaters(st); err != nil {
		return obs, err
	}
	a.deps.Registry.ReloadRegistriesConf()
	if obs.Booted == nil {
		res.Plan = Decide(Desired{}, obs)
		return obs, &PassError{Reason: ReasonNotBootc, Err: errors.New(res.Plan.Reason)}
	}
	if opts.DryRun {
		return obs, nil
	}
	if err := a.settleAutoRollback(j, obs); err != nil {
		return obs, err
	}
	if j.Committed == "" && j.Pending == nil {
		// The image the host ran when the agent first saw it is the
		// first known-good one.
		j.Committed = obs.Booted.Digest
		if err := a.journal.Save(j); err != nil {
			return obs, &PassError{Reason: ReasonState, Err: err}
		}
	}
	return obs, nil
}

// resolved is what a pass works towards. ferr is set when the fleet
// repository could not be read and the pass works from the journal.
type resolved struct {
	desired  Desired
	spec     *hostspec.HostSpec
	verifier *policy.Verifier
	ferr     error
}

// resolveForPass fetches and resolves the desired state; a failure here
// still lets a due verification run from what the journal kept, so a host
// cut off from Git after an update is rolled back rather than stuck.
func (a *Agent) resolveForPass(ctx context.Context, opts PassOptions, j *Journal, obs Observed, st *Status, res *PassResult) (resolved, error) {
	var r resolved
	r.desired, r.spec, r.verifier, r.ferr = a.desired(ctx, j, obs.Arch)
	if r.ferr == nil {
		if err := a.checkMachineID(r.spec); err != nil {
			return r, err
		}
	}
	if r.ferr != nil {
		if j.Pending == nil || !rebooted(j.Pending, obs) || opts.DryRun {
			return r, r.ferr
		}
		a.log.Warn("fleet repository unavailable; verifying the pending update from the journal", "err", r.ferr)
		r.desired, r.spec = desiredFromPending(j.Pending), &hostspec.HostSpec{Host: a.cfg.Host, Health: j.Pending.Health, Update: j.Pending.Update}
		r.spec.Etc = nil
	}
	if r.ferr == nil && a.undeclared {
		st.Warnings = append(st.Warnings, undeclaredWarning(a.cfg.Host))
	}
	res.Desired = &DesiredStatus{Commit: r.desired.Commit, Ref: r.spec.Image.Ref, Digest: r.desired.Digests[0], Target: r.desired.ImageRef, ResolvedFrom: r.desired.Endpoint}
	if len(r.desired.Digests) > 1 {
		res.Desired.PlatformDigest = r.desired.Digests[1]
	}
	if r.ferr == nil {
		a.noteVerdict(r.spec, r.desired, res)
	}
	return r, nil
}

// planEtcForPass plans the /etc changes and drift, counts them into obs
// for Decide and records them in the status.
func (a *Agent) planEtcForPass(ctx context.Context, spec *hostspec.HostSpec, obs *Observed, st *Status, res *PassResult) (*etcoverlay.Plan, error) {
	etcPlan, err := a.deps.Etc.Plan(ctx, spec.Etc)
	if err != nil {
		return nil, &PassError{Reason: ReasonEtc, Err: fmt.Errorf("plan /etc: %w", err)}
	}
	res.Etc = etcPlan
	obs.EtcChanges = len(etcPlan.Changes) + len(etcPlan.Leftovers)
	obs.EtcRebootRequired = etcPlan.Owed.RebootRequired
	a.recordEtc(st, etcPlan)
	st.Warnings = append(st.Warnings, modeWarnings(spec.Etc)...)
	return etcPlan, nil
}

// settlePass records in the journal that the pass finished every step:
// nothing is in flight any more (an intent left by a crash was redone or
// turned out unnecessary), and what was applied and booted.
func (a *Agent) settlePass(j *Journal, obs Observed, desired Desired) error {
	changed := j.Intent != nil
	j.Intent = nil
	if j.LastApplied != desired.Commit && desired.Commit != "" {
		j.LastApplied, changed = desired.Commit, true
	}
	if noteBootedFrom(j, obs, desired) {
		changed = true
	}
	if changed {
		if err := a.journal.Save(j); err != nil {
			return &PassError{Reason: ReasonState, Err: err}
		}
	}
	return nil
}
