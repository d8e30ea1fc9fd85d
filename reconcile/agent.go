// Package reconcile is bootsync's agent: one reconcile pass (observe, fetch,
// resolve, gate, plan, execute, verify, record), the journal that makes a
// pass safe to interrupt at any point, status.json, Prometheus metrics and
// the loop that runs passes.
//
// The planner (Decide) is a pure function of desired and observed state;
// everything with side effects is in the executor, which journals each
// intent before acting on it.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	etcoverlay "github.com/bootsync/bootsync/apply/etc"
	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/policy/health"
	"github.com/bootsync/bootsync/registry"
)

// Source is the fleet repository as the agent sees it (gitsource.Remote).
type Source interface {
	// Poll fetches the ref if it moved and checks the trust rules.
	Poll(ctx context.Context, lastApplied string) (*gitsource.PollResult, error)
	// Ping proves the remote answers (one ref advertisement), for the
	// management-plane health check.
	Ping(ctx context.Context) error
}

// Config is the host-local configuration the agent needs.
type Config struct {
	Host   string            // this host's name in the fleet repository
	Labels map[string]string // extra labels from the host's config
	// StateDir holds the journal, status.json, the /etc manifest and caches.
	StateDir string
	// Root is the host's root directory ("/" on a host).
	Root string
	// RebootCommand reboots the host (default: systemctl reboot).
	RebootCommand []string
	// RebootWait is how long to wait to be stopped after RebootCommand
	// returned before reporting that the reboot did not happen.
	RebootWait time.Duration
	// LockWait bounds how long a pass waits for the state lock held by
	// another pass (default 10 minutes); then it fails with reason state.
	LockWait time.Duration
	// Trust: the host's own image policy; the fleet repo may only add to it.
	SigningKeys       []string
	RequireSignatures bool
	AllowedRegistries []string
	AcceptBundles     bool
	// ReservedPaths are host paths of the files the agent's configuration
	// consists of or names; with etcoverlay.ReservedPaths, the fleet may
	// not write them unless AllowReserved lists them.
	ReservedPaths []string
	AllowReserved []string
	// AllowOtherUpdaters lets passes run while another updater is enabled
	// (agent.allowOtherUpdaters); by default they are refused.
	AllowOtherUpdaters bool
	// GitRemote labels the management-plane health check (redacted).
	GitRemote string
	// NetworkTimeout bounds each phase of a FleetLock request (the Git and
	// registry clients in Deps have their own).
	NetworkTimeout time.Duration
	// LimitCeilings are the most the fleet repository's limits may be
	// raised to on this host (hostspec.WithLimitCeilings).
	LimitCeilings hostspec.Limits
	// Systemctl runs health checks of type systemd.
	Systemctl string
	// FaultPoint makes the agent SIGKILL itself when it reaches the named
	// point of a pass (testing only: see faultPoints).
	FaultPoint string
	Logger     *slog.Logger
	Clock      func() time.Time
}

// Deps are the agent's connections to the outside world.
type Deps struct {
	Source   Source
	Registry *registry.Client
	Bootc    *bootc.Driver
	Etc      *etcoverlay.Writer
	Metrics  *Metrics // optional
	// HostPolicy evaluates the host's containers-policy.json before
	// anything is staged (optional: nil skips it).
	HostPolicy HostPolicy
}

// Agent runs reconcile passes for one host.
type Agent struct {
	cfg      Config
	deps     Deps
	journal  *JournalStore
	status   *StatusStore
	verdicts *verdictCache
	plats    *platformCache
	reserved *etcoverlay.Reserved
	log      *slog.Logger
	now      func() time.Time

	// The last resolved commit, so that a pass on an unchanged commit does
	// not load and render the fleet repository again.
	cachedCommit string
	cachedSpec   *hostspec.HostSpec

	// undeclared is set when the cached spec's host has no file in hosts/.
	undeclared bool

	// refused remembers the last commit that could not be loaded or
	// resolved, and why: loading and rendering are deterministic, so
	// later passes on the same commit report the same error without
	// spending its budget again, and a new commit (a revert) is tried at
	// once.
	refusedCommit string
	refusedErr    error

	// stopping is closed when the agent is asked to stop (SIGTERM): a pass
	// waiting for the shutdown its reboot started returns at once.
	stopping <-chan struct{}
}

// New returns an agent; it touches nothing until the first pass.
func New(cfg Config, deps Deps) (*Agent, error) {
	switch {
	case cfg.Host == "":
		return nil, errors.New("reconcile: host name is empty")
	case cfg.StateDir == "":
		return nil, errors.New("reconcile: state directory is empty")
	case deps.Source == nil || deps.Registry == nil || deps.Bootc == nil || deps.Etc == nil:
		return nil, errors.New("reconcile: source, registry, bootc and etc writer are all required")
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if len(cfg.RebootCommand) == 0 {
		cfg.RebootCommand = []string{"systemctl", "reboot"}
	}
	if cfg.RebootWait == 0 {
		cfg.RebootWait = 5 * time.Minute
	}
	if cfg.LockWait == 0 {
		cfg.LockWait = defaultLockWait
	}
	if cfg.Systemctl == "" {
		cfg.Systemctl = "systemctl"
	}
	if cfg.NetworkTimeout <= 0 {
		cfg.NetworkTimeout = netdeadline.Default
	}
	if cfg.FaultPoint != "" && !faultPoints[cfg.FaultPoint] {
		return nil, fmt.Errorf("reconcile: unknown fault point %q", cfg.FaultPoint)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	reserved, err := etcoverlay.NewReserved(cfg.ReservedPaths, cfg.AllowReserved)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	return &Agent{reserved: reserved,
		cfg: cfg, deps: deps, log: log.With("host", cfg.Host), now: now,
		journal:  NewJournalStore(cfg.StateDir),
		status:   NewStatusStore(cfg.StateDir),
		verdicts: newVerdictCache(cfg.StateDir),
		plats:    newPlatformCache(cfg.StateDir),
	}, nil
}

// PassOptions change what a pass may do.
type PassOptions struct {
	// DryRun plans and reports but changes nothing: no /etc write, no bootc
	// mutation, no journal or status update.
	DryRun bool
}

// PassResult is what a pass decided and did.
type PassResult struct {
	Plan    Plan
	Desired *DesiredStatus
	// Etc is the /etc plan the pass computed (nil when it did not get that far).
	Etc *etcoverlay.Plan
	// Health is the verification the pass ran, if any.
	Health *health.Report
	// Rebooting is true when the pass started a reboot.
	Rebooting bool
	// Warnings are what status.json lists as warnings for this pass.
	Warnings []string
}

// Pass runs one reconcile pass. Errors carry a reason (see Reason) and leave
// the host unchanged wherever the failure came before an action.
func (a *Agent) Pass(ctx context.Context, opts PassOptions) (*PassResult, error) {
	started := a.now()
	if !opts.DryRun {
		unlock, err := a.lockState(ctx)
		if err != nil {
			err = &PassError{Reason: ReasonState, Err: err}
			a.recordFailure(err, started)
			return nil, err
		}
		defer unlock()
	}
	j, err := a.journal.Load()
	if err != nil {
		err = &PassError{Reason: ReasonState, Err: err}
		if !opts.DryRun {
			a.recordFailure(err, started)
		}
		return nil, err
	}
	st := &Status{Host: a.cfg.Host, Updated: started, Managed: []ManagedFile{}, Drift: []DriftStatus{}, Quarantine: []QuarantineEntry{}}
	if prev, err := a.status.Load(); err == nil && prev != nil {
		st.LastSuccess, st.LastError, st.Health = prev.LastSuccess, prev.LastError, prev.Health
	}
	res, err := a.pass(ctx, opts, j, st)
	if res != nil {
		res.Warnings = st.Warnings
	}
	if opts.DryRun {
		return res, err
	}
	a.finish(st, j, res, err, started)
	return res, err
}

// finish records the outcome of a pass in status.json, metrics and the log.
func (a *Agent) finish(st *Status, j *Journal, res *PassResult, err error, started time.Time) {
	pass := &PassStatus{Started: started, Duration: a.now().Sub(started).Round(time.Millisecond).String(), Result: "ok"}
	if res != nil {
		pass.State, pass.Reason, pass.Steps = res.Plan.State, res.Plan.Reason, res.Plan.Steps
		st.Desired = res.Desired
	}
	reason := ""
	if err != nil {
		reason = Reason(err)
		pass.Result = "error"
		st.LastError = &ErrorStatus{Reason: reason, Message: err.Error(), Time: a.now()}
		a.log.Error("pass failed", "reason", reason, "err", err)
	} else {
		st.LastSuccess = a.now()
		st.LastError = nil // status says what is wrong now; the log keeps history
		a.log.Info("pass done", "state", pass.State, "reason", pass.Reason, "duration", pass.Duration)
	}
	st.LastPass = pass
	st.LockHeld = j.LockHeld
	for _, q := range j.Quarantine {
		st.Quarantine = append(st.Quarantine, q)
	}
	a.saveStatus(st)
	a.deps.Metrics.observePass(st, started, reason)
}

func (a *Agent) pass(ctx context.Context, opts PassOptions, j *Journal, st *Status) (*PassResult, error) {
	res := &PassResult{Plan: Plan{Steps: []Step{}}}
	defer func() {
		if managed, err := a.deps.Etc.Managed(ctx); err == nil {
			for _, m := range managed {
				st.Managed = append(st.Managed, ManagedFile{Path: m.Path, SHA256: m.SHA256})
			}
		}
	}()

	// observe
	obs, err := a.observe(ctx, j)
	if err != nil {
		return res, err
	}
	st.Booted, st.Staged, st.Rollback, st.RollbackQueued = obs.Booted, obs.Staged, obs.Rollback, obs.RollbackQueued
	if err := a.checkOtherUpdaters(st); err != nil {
		return res, err
	}
	a.deps.Registry.ReloadRegistriesConf()
	if obs.Booted == nil {
		res.Plan = Decide(Desired{}, obs)
		return res, &PassError{Reason: ReasonNotBootc, Err: errors.New(res.Plan.Reason)}
	}
	if !opts.DryRun {
		if err := a.settleAutoRollback(j, obs); err != nil {
			return res, err
		}
		if j.Committed == "" && j.Pending == nil {
			// The image the host ran when the agent first saw it is the
			// first known-good one.
			j.Committed = obs.Booted.Digest
			if err := a.journal.Save(j); err != nil {
				return res, &PassError{Reason: ReasonState, Err: err}
			}
		}
	}
	a.fault("observed")

	// fetch and resolve; a failure here still lets a due verification run
	// from what the journal kept, so a host cut off from Git after an
	// update is rolled back rather than stuck.
	desired, spec, verifier, ferr := a.desired(ctx, j, obs.Arch)
	if ferr == nil {
		if err := a.checkMachineID(spec); err != nil {
			return res, err
		}
	}
	if ferr != nil {
		if j.Pending == nil || !rebooted(j.Pending, obs) || opts.DryRun {
			return res, ferr
		}
		a.log.Warn("fleet repository unavailable; verifying the pending update from the journal", "err", ferr)
		desired, spec = desiredFromPending(j.Pending), &hostspec.HostSpec{Host: a.cfg.Host, Health: j.Pending.Health, Update: j.Pending.Update}
		spec.Etc = nil
	}
	if ferr == nil && a.undeclared {
		st.Warnings = append(st.Warnings, undeclaredWarning(a.cfg.Host))
	}
	res.Desired = &DesiredStatus{Commit: desired.Commit, Ref: spec.Image.Ref, Digest: desired.Digests[0], Target: desired.ImageRef, ResolvedFrom: desired.Endpoint}
	if len(desired.Digests) > 1 {
		res.Desired.PlatformDigest = desired.Digests[1]
	}
	if ferr == nil {
		a.noteVerdict(spec, desired, res)
	}
	a.fault("resolved")

	// /etc: what would change, and drift.
	var etcPlan *etcoverlay.Plan
	if ferr == nil {
		etcPlan, err = a.deps.Etc.Plan(ctx, spec.Etc)
		if err != nil {
			return res, &PassError{Reason: ReasonEtc, Err: fmt.Errorf("plan /etc: %w", err)}
		}
		res.Etc = etcPlan
		obs.EtcChanges = len(etcPlan.Changes) + len(etcPlan.Leftovers)
		obs.EtcRebootRequired = etcPlan.Owed.RebootRequired
		a.recordEtc(st, etcPlan)
		st.Warnings = append(st.Warnings, modeWarnings(spec.Etc)...)
	}

	plan := Decide(desired, obs)
	res.Plan = plan
	st.RebootPending = plan.State == StateWaiting || plan.Has(ActionReboot)
	if opts.DryRun {
		return res, nil
	}
	if plan.State == StateWaiting {
		a.noteDeferral(j, desired, obs)
	}

	// gate: an image is verified before anything makes the host boot it.
	if needsVerdict(plan) {
		if verifier == nil {
			return res, ferr // working from the journal: nothing new may be booted
		}
		if err := a.gate(ctx, spec, verifier, desired, res); err != nil {
			res.Plan = Plan{State: StateRefused, Reason: "the desired image was refused; nothing was changed", Steps: []Step{}}
			st.RebootPending = false
			return res, err
		}
	}
	a.fault("gated")

	ex := &execution{a: a, j: j, obs: obs, desired: desired, spec: spec, etcPlan: etcPlan, res: res, st: st}
	if err := ex.run(ctx); err != nil {
		return res, err
	}
	if ferr != nil {
		return res, ferr
	}
	// The pass finished every step: nothing is in flight any more (an
	// intent left by a crash was redone or turned out unnecessary).
	changed := j.Intent != nil
	j.Intent = nil
	if j.LastApplied != desired.Commit && desired.Commit != "" {
		j.LastApplied, changed = desired.Commit, true
	}
	if changed {
		if err := a.journal.Save(j); err != nil {
			return res, &PassError{Reason: ReasonState, Err: err}
		}
	}
	return res, nil
}

// observe reads bootc status and the host facts planning needs.
func (a *Agent) observe(ctx context.Context, j *Journal) (Observed, error) {
	host, err := a.deps.Bootc.Status(ctx)
	if err != nil {
		return Observed{}, &PassError{Reason: ReasonBootc, Err: fmt.Errorf("read bootc status: %w", err)}
	}
	obs := Observed{Now: a.now(), Journal: j, BootID: a.bootID()}
	if ver, err := a.deps.Bootc.Version(ctx); err == nil {
		obs.Capabilities = Capabilities{DownloadOnly: ver.SupportsDownloadOnly(), SoftReboot: ver.SupportsSoftReboot()}
	}
	s := host.Status
	obs.Booted, obs.Staged, obs.Rollback = deployment(s.Booted), deployment(s.Staged), deployment(s.Rollback)
	obs.RollbackQueued = s.RollbackQueued
	obs.UsersLoggedIn = countUserSessions(a.cfg.Root)
	obs.Arch = runtime.GOARCH
	if s.Booted != nil && s.Booted.Architecture() != "" {
		obs.Arch = s.Booted.Architecture()
	}
	return obs, nil
}

func deployment(e *bootc.BootEntry) *Deployment {
	if e == nil || e.Image == nil {
		return nil
	}
	return &Deployment{ImageRef: e.Image.Image.Image, Digest: e.Image.ImageDigest, DownloadOnly: e.DownloadOnly, SoftRebootCapable: e.SoftRebootCapable}
}

// desired fetches the fleet repository and resolves this host's spec to a
// pinned image, with the image policy (host trust plus the fleet's) that
// applies to it.
func (a *Agent) desired(ctx context.Context, j *Journal, arch string) (Desired, *hostspec.HostSpec, *policy.Verifier, error) {
	poll, err := a.deps.Source.Poll(ctx, j.LastApplied)
	if err != nil {
		return Desired{}, nil, nil, &PassError{Reason: sourceReason(err), Err: fmt.Errorf("fetch fleet repository: %w", err)}
	}
	if poll.Recovered != nil {
		a.log.Warn("git cache was corrupt and has been cloned again", "err", poll.Recovered)
	}
	spec := a.cachedSpec
	if a.cachedCommit != poll.Commit || spec == nil {
		if spec, err = a.resolveCommit(ctx, poll); err != nil {
			return Desired{}, nil, nil, err
		}
	}
	// The fleet may not loosen the host's own trust: nothing of this
	// commit is applied if it targets a reserved path.
	if err := a.reserved.CheckFiles(spec.Etc); err != nil {
		return Desired{}, nil, nil, &PassError{Reason: ReasonReservedPath, Err: fmt.Errorf("host %s at %s: %w", a.cfg.Host, short(poll.Commit), err)}
	}
	d := Desired{Commit: poll.Commit, Update: spec.Update}
	if len(spec.Update.Windows) > 0 {
		sched, err := parseWindows(spec.Update.Windows)
		if err != nil {
			return Desired{}, nil, nil, &PassError{Reason: ReasonInvalidRepo, Err: err}
		}
		d.Windows = sched
	}
	verifier, err := a.verifier(spec)
	if err != nil {
		return Desired{}, nil, nil, err
	}
	// The allow-lists are checked before any registry request.
	if err := verifier.CheckAllowed(spec.Image.Ref); err != nil {
		return Desired{}, nil, nil, &PassError{Reason: imageReason(err), Err: fmt.Errorf("image %s for host %s: %w", spec.Image.Ref, a.cfg.Host, err)}
	}
	var resolved *registry.Resolved
	if spec.Image.Digest != "" {
		resolved, err = a.deps.Registry.ResolvePinned(ctx, spec.Image.Ref, spec.Image.Digest)
	} else {
		resolved, err = a.deps.Registry.Resolve(ctx, spec.Image.Ref)
	}
	if err != nil {
		return Desired{}, nil, nil, &PassError{Reason: imageReason(err), Err: fmt.Errorf("resolve image %s for host %s: %w", spec.Image.Ref, a.cfg.Host, err)}
	}
	d.ImageRef, d.Endpoint = resolved.Reference(), resolved.Endpoint
	d.Digests = []string{resolved.Digest}
	plat, err := a.platformDigest(ctx, d.ImageRef, resolved, arch)
	if err != nil {
		return Desired{}, nil, nil, &PassError{Reason: imageReason(err), Err: fmt.Errorf("platform of image %s for host %s: %w", d.ImageRef, a.cfg.Host, err)}
	}
	if plat != "" && plat != resolved.Digest {
		d.Digests = append(d.Digests, plat)
	}
	return d, spec, verifier, nil
}

// platformDigest is the digest bootc will report for ref: the index entry
// for this host's architecture, cached by content address.
func (a *Agent) platformDigest(ctx context.Context, ref string, r *registry.Resolved, arch string) (string, error) {
	if r.MediaType != "" && !r.IsIndex {
		return r.Digest, nil
	}
	if d, ok := a.plats.get(r.Digest, arch); ok {
		return d, nil
	}
	d, err := a.deps.Registry.PlatformDigest(ctx, ref, arch)
	if err != nil {
		return "", err
	}
	a.plats.put(r.Digest, arch, d)
	return d, nil
}

// desiredFromPending rebuilds the desired state of a pending update from
// the journal, for verification when the fleet repository is unreachable.
func desiredFromPending(p *PendingReboot) Desired {
	return Desired{Commit: p.Commit, ImageRef: p.ImageRef, Digests: p.Digests, Update: p.Update}
}

// rebooted reports whether the reboot p asked for has happened: the boot
// ID changed, or, for a soft reboot (which keeps the kernel and its boot
// ID), the target image is booted.
func rebooted(p *PendingReboot, o Observed) bool {
	if p.BootID != o.BootID {
		return true
	}
	return p.Soft && o.Booted != nil && containsDigest(p.Digests, o.Booted.Digest)
}

// settleAutoRollback closes an automatic rollback once the host rebooted:
// it is never verified again (that would roll back the rollback).
func (a *Agent) settleAutoRollback(j *Journal, o Observed) error {
	p := j.Pending
	if p == nil || p.Kind != pendingAutoRollback || !rebooted(p, o) {
		return nil
	}
	if o.Booted != nil && containsDigest(p.Digests, o.Booted.Digest) {
		a.log.Info("automatic rollback done", "digest", o.Booted.Digest)
	} else {
		a.log.Error("automatic rollback did not boot the previous image", "want", p.Digests, "booted", o.Booted)
	}
	j.Pending = nil
	if err := a.journal.Save(j); err != nil {
		return &PassError{Reason: ReasonState, Err: err}
	}
	return nil
}

func containsDigest(ds []string, d string) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// noteDeferral remembers when a reboot was first deferred for logged-in
// users, so update.maxDeferral can end the wait.
func (a *Agent) noteDeferral(j *Journal, d Desired, o Observed) {
	deferring := d.Update.DeferRebootWhileUsers && o.UsersLoggedIn > 0
	switch {
	case deferring && j.UsersDeferredSince.IsZero():
		j.UsersDeferredSince = o.Now
	case !deferring && !j.UsersDeferredSince.IsZero():
		j.UsersDeferredSince = time.Time{}
	default:
		return
	}
	if err := a.journal.Save(j); err != nil {
		a.log.Error("write journal", "err", err)
	}
}

func (a *Agent) recordEtc(st *Status, p *etcoverlay.Plan) {
	for _, d := range p.Drift {
		detail := string(d.Kind)
		if d.Kind == etcoverlay.DriftLabel {
			detail = fmt.Sprintf("label: SELinux label %s, the policy's is %s", d.GotLabel, d.WantLabel)
		}
		st.Drift = append(st.Drift, DriftStatus{Path: d.Path, Detail: detail})
	}
	for _, path := range p.ImageShipped {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%s is also shipped by the image: managing it freezes it against image updates; prefer a drop-in", path))
	}
	for _, pr := range p.Problems {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%s: %v", pr.Path, pr.Err))
	}
}

func (a *Agent) bootID() string { return BootID(a.cfg.Root) }

// BootID identifies the current boot of the host at root: the kernel's
// boot ID, which changes with every (hard) boot.
func BootID(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/random/boot_id"))
	if err != nil && root != "/" {
		b, err = os.ReadFile("/proc/sys/kernel/random/boot_id")
	}
	if err != nil {
		return ""
	}
	return string(trimSpace(b))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// faultPoints are the points at which FaultPoint can kill the agent, to
// prove that a crash anywhere in a pass loses nothing.
var faultPoints = map[string]bool{
	"observed": true, "resolved": true, "gated": true,
	"before-write-etc": true, "after-write-etc": true,
	"before-switch": true, "after-switch": true,
	"before-lock-staged": true, "after-lock-staged": true,
	"before-rollback": true, "after-rollback": true,
	"before-acquire-lock": true, "after-acquire-lock": true,
	"before-reboot": true,
	"before-verify": true, "after-verify": true,
}

// fault kills the process at the configured point, the way power loss
// would: no deferred function runs.
func (a *Agent) fault(point string) {
	if a.cfg.FaultPoint == point {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered asynchronously
	}
}

func undeclaredWarning(host string) string {
	return "host " + host + " has no file hosts/" + host + ".yaml in the fleet repository: it gets the fleet defaults and the groups that match its name (check host.name)"
}
