package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"time"
)

// stateLockNotice is how long a pass waits for the state lock before it says in
// the log that it is waiting (another `bootsync reconcile` or `bootsync
// reboot` holds it).
const stateLockNotice = 2 * time.Second

// defaultStateLockWait bounds the wait for the state lock: a holder that hangs
// must show up as an error, not as an agent that silently stops working.
const defaultStateLockWait = 10 * time.Minute

// lockState takes the state lock for a pass, saying so in the log when it
// has to wait, and giving up after Config.StateLockWait.
func (a *Agent) lockStateDir(ctx context.Context) (func(), error) {
	quick, cancel := context.WithTimeout(ctx, stateLockNotice)
	unlock, err := LockStateDir(quick, a.cfg.StateDir)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return unlock, err
	}
	a.log.Warn("waiting for the state lock: another bootsync pass is running on this host",
		"lock", filepath.Join(a.cfg.StateDir, "agent.lock"), "max", a.cfg.StateLockWait)
	wait, cancel := context.WithTimeout(ctx, a.cfg.StateLockWait)
	defer cancel()
	return LockStateDir(wait, a.cfg.StateDir)
}

// recordFailure records a pass that could not start because the agent's
// state could not be locked or read (a newer agent's journal, a corrupt
// one, a read-only /var): in the log, in the errors metric and in
// status.json, which is written without the state lock (a status write is
// atomic on its own). If even that fails, the log and the metric say so.
func (a *Agent) recordFailure(err error, started time.Time) {
	reason := ReasonOf(err)
	a.log.Error("pass failed", "reason", reason, "err", err)
	a.deps.Metrics.passFailed(reason, started)
	st, lerr := a.status.Load()
	if lerr != nil || st == nil {
		st = &Status{Host: a.cfg.Host, Managed: []ManagedFile{}, Drift: []DriftStatus{}, Quarantine: []QuarantineEntry{}}
	}
	now := a.now()
	st.Updated = now
	st.LastPass = &PassStatus{Started: started, Duration: now.Sub(started).Round(time.Millisecond).String(), Result: "error",
		Reason: "the pass could not read or lock the agent's state; nothing was done", Steps: []Step{}}
	st.LastError = &ErrorStatus{Reason: reason, Message: err.Error(), Time: now}
	a.saveStatus(st)
}

// saveStatus writes status.json; a failure is logged and counted as a
// state error, since nothing else would show it.
func (a *Agent) saveStatus(st *Status) {
	if err := a.status.Save(st); err != nil {
		a.log.Error("write status", "reason", ReasonState, "err", err)
		a.deps.Metrics.countError(ReasonState)
	}
}
