package reconcile

import (
	"context"
	"math/rand/v2"
	"time"
)

// Run runs passes until ctx is done: one at once, then one every interval
// plus a random share of jitter (so a fleet does not poll in lockstep), and
// one at once whenever trigger fires (SIGHUP). Passes never overlap. A pass
// in flight when ctx ends gets stopGrace to finish its current step.
func (a *Agent) Run(ctx context.Context, interval, jitter, stopGrace time.Duration, trigger <-chan struct{}) error {
	a.stopping = ctx.Done()
	for {
		passCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, func() {
			t := time.AfterFunc(stopGrace, cancel)
			<-passCtx.Done()
			t.Stop()
		})
		_, _ = a.Pass(passCtx, PassOptions{}) // the outcome is in status.json, metrics and the log
		stop()
		cancel()

		wait := interval
		if jitter > 0 {
			wait += rand.N(jitter)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-trigger:
			timer.Stop()
			a.log.Info("pass requested (SIGHUP)")
		case <-timer.C:
		}
	}
}
