package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
)

// ReasonRenderBudget is a commit that goes over one of the fleet
// repository's limits (a template's steps or memory, a file's size): it is
// refused like an invalid commit, and a later commit is tried as usual.
const ReasonRenderBudget Reason = "render-budget"

// resolveCommit loads the fleet repository at the polled commit and
// resolves this host's spec, within the repository's limits. Rendering
// stops at once when the agent is asked to stop: nothing has been applied
// yet, so there is nothing to finish.
func (a *Agent) resolveCommit(ctx context.Context, poll *gitsource.PollResult) (*hostspec.HostSpec, error) {
	if poll.Commit == a.refusedCommit && a.refusedErr != nil {
		return nil, a.refusedErr
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.stopping != nil {
		go func() {
			select {
			case <-a.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	fail := func(what string, err error) error {
		reason := ReasonInvalidRepo
		if hostspec.LimitExceeded(err) != "" {
			reason = ReasonRenderBudget
		}
		perr := &PassError{Reason: reason, Err: fmt.Errorf("%s at %s: %w", what, short(poll.Commit), err)}
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			a.refusedCommit, a.refusedErr = poll.Commit, perr
		}
		return perr
	}
	// Only this host's file is decoded: in a fleet of 100,000 hosts the
	// others' files would cost every host seconds of CPU per commit, and
	// a mistake in one of them is not this host's to refuse.
	own := hostspec.WithHostFiles(func(name string) bool { return name == a.cfg.Host })
	repo, err := hostspec.Load(ctx, poll.Revision.FS, hostspec.WithRevision(poll.Commit), hostspec.WithLimitCeilings(a.cfg.LimitCeilings), own)
	if err != nil {
		return nil, fail("load fleet repository", err)
	}
	_, declared := repo.Host(a.cfg.Host)
	a.undeclared = !declared
	if a.undeclared {
		a.log.Warn(undeclaredWarning(a.cfg.Host))
	}
	spec, err := repo.Resolve(ctx, a.cfg.Host, a.cfg.Labels)
	if err != nil {
		return nil, fail("resolve host "+a.cfg.Host, err)
	}
	a.cachedCommit, a.cachedSpec = poll.Commit, spec
	a.refusedCommit, a.refusedErr = "", nil
	return spec, nil
}
