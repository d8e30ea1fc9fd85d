package fleetsim

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootsync/bootsync/gitsource"
)

// stormResult is a merge event: every host fetches the new revision.
type stormResult struct {
	converge     time.Duration // publish to the last host on the new commit
	converged    int           // hosts on the new commit (all, unless the server fell behind)
	peak         int64         // most polls in flight at once
	bytes        int64         // served from publish to convergence
	cpu          time.Duration // server CPU from publish to convergence
	fetched      int           // hosts that downloaded the new revision
	errors       int
	window       time.Duration // interval + jitter: the time it should take
	steadyPerSec float64       // polls/s offered
}

// storm runs the fleet at interval+jitter, lets it settle on the current
// revision, calls publish (commit and push, or bootsync publish) and waits
// until every host polled the new commit.
func (f *fleet) storm(t testing.TB, interval, jitter time.Duration, publish func() string) stormResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		target  atomic.Value // the new commit, once published
		seen    = make([]bool, len(f.agents))
		mu      sync.Mutex
		onNew   int
		fetched int
		done    = make(chan struct{})
	)
	target.Store("")
	obs := func(host int, res *gitsource.PollResult) {
		mu.Lock()
		defer mu.Unlock()
		if c := target.Load().(string); c == "" || res.Commit != c || seen[host] {
			return
		}
		seen[host] = true
		onNew++
		if res.Fetched {
			fetched++
		}
		if onNew == len(f.agents) {
			close(done)
		}
	}
	st := &stats{}
	wg := f.run(ctx, interval, jitter, st, obs)
	time.Sleep(interval + jitter) // settled: every host polled once since
	commit := publish()
	st.peak.Store(st.inflight.Load())
	cpu0, bytes0, start := f.cpu(), f.served(), time.Now()
	target.Store(commit)
	select {
	case <-done:
	case <-time.After(10 * (interval + jitter)): // reported, not fatal: the figure is how far behind
	}
	mu.Lock()
	r := stormResult{converged: onNew}
	mu.Unlock()
	r.converge = time.Since(start)
	r = stormResult{converged: r.converged, converge: r.converge, peak: st.peak.Load(), bytes: f.served() - bytes0, cpu: f.cpu() - cpu0,
		window: interval + jitter, steadyPerSec: float64(len(f.agents)) / (interval + jitter/2).Seconds()}
	cancel()
	wg.Wait()
	_, r.errors = st.count()
	mu.Lock()
	r.fetched = fetched
	mu.Unlock()
	return r
}
