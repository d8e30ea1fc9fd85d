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
	"time"

	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/faultpoint"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/policy/health"
)

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
	// StateLockWait bounds how long a pass waits for the state lock held by
	// another pass (default 10 minutes); then it fails with reason state.
	StateLockWait time.Duration
	// Trust is the host's own image policy; the fleet repo may only add to it.
	Trust policy.HostTrust
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
	// AgeIdentityFiles and SSHHostKeys are the host's own keys for the
	// secrets of its spec (secrets.LoadKeyring); never from the repository.
	AgeIdentityFiles []string
	SSHHostKeys      []string
	// Systemctl runs health checks of type systemd.
	Systemctl string
	// FaultPoint makes the agent SIGKILL itself when it reaches the named
	// point of a pass (testing only: see faultPoints).
	FaultPoint string
	Logger     *slog.Logger
	Clock      func() time.Time
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

	// startReboot starts a (hard) reboot: runRebootCommand, or the
	// package's tests' stand-in for the shutdown it begins.
	startReboot func(ctx context.Context) error
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
	if cfg.StateLockWait == 0 {
		cfg.StateLockWait = defaultStateLockWait
	}
	if cfg.Systemctl == "" {
		cfg.Systemctl = "systemctl"
	}
	if cfg.NetworkTimeout <= 0 {
		cfg.NetworkTimeout = netdeadline.Default
	}
	if cfg.FaultPoint != "" {
		if !faultPoints[cfg.FaultPoint] {
			return nil, fmt.Errorf("reconcile: unknown fault point %q", cfg.FaultPoint)
		}
		faultpoint.KillAt(cfg.FaultPoint)
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
	a := &Agent{reserved: reserved,
		cfg: cfg, deps: deps, log: log.With("host", cfg.Host), now: now,
		journal:  NewJournalStore(cfg.StateDir),
		status:   NewStatusStore(cfg.StateDir),
		verdicts: newVerdictCache(cfg.StateDir),
		plats:    newPlatformCache(cfg.StateDir),
	}
	a.startReboot = a.runRebootCommand
	return a, nil
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
		unlock, err := a.lockStateDir(ctx)
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
	var reason Reason
	if err != nil {
		reason = ReasonOf(err)
		pass.Result = "error"
		st.LastError = &ErrorStatus{Reason: reason, Message: err.Error(), Time: a.now()}
		a.log.Error("pass failed", "reason", reason, "err", err)
	} else {
		st.LastSuccess = a.now()
		st.LastError = nil // status says what is wrong now; the log keeps history
		a.log.Info("pass done", "state", pass.State, "reason", pass.Reason, "duration", pass.Duration)
	}
	st.LastPass = pass
	st.FleetLockHeld = j.FleetLockHeld
	st.BootedCommit = bootedCommit(j, st.Booted)
	for _, q := range j.Quarantine {
		st.Quarantine = append(st.Quarantine, q)
	}
	a.saveStatus(st)
	a.deps.Metrics.observePass(st, started, reason)
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

// fault marks a point at which BOOTSYNC_FAULT_POINT can kill the agent.
func (a *Agent) fault(point string) { faultpoint.Reach(point) }

func undeclaredWarning(host string) string {
	return "host " + host + " has no file hosts/" + host + ".yaml in the fleet repository: it gets the fleet defaults and the groups that match its name (check host.name)"
}
