package fleetsim

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootsync/bootsync/gitsource"
)

// pollFunc is one host's real poll (gitsource.Remote.Poll or
// ocisource.Source.Poll).
type pollFunc func(ctx context.Context, lastApplied string) (*gitsource.PollResult, error)

// fleet is N simulated hosts of one transport and the server they poll.
type fleet struct {
	name   string
	agents []pollFunc
	last   []string             // each host's applied commit
	cpu    func() time.Duration // the server's CPU time so far
	served func() int64         // bytes the server sent so far
}

// stats collects what the hosts saw during one run.
type stats struct {
	mu        sync.Mutex
	latencies []time.Duration
	errors    int
	lastErr   error
	inflight  atomic.Int64
	peak      atomic.Int64
}

func (s *stats) begin() {
	n := s.inflight.Add(1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
}

func (s *stats) end(d time.Duration, err error) {
	s.inflight.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors++
		s.lastErr = err
		return
	}
	s.latencies = append(s.latencies, d)
}

// quantile is the q-quantile of the successful polls' latencies.
func (s *stats) quantile(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

func (s *stats) count() (ok, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.latencies), s.errors
}

// observer is told each host's poll result (the merge storm's tracker).
type observer func(host int, res *gitsource.PollResult)

// run polls from every host as the agent does (reconcile.Agent.Run): a
// pass, then interval plus a random share of jitter, until ctx ends. Hosts
// start spread over one period, as a fleet that has run a while is.
func (f *fleet) run(ctx context.Context, interval, jitter time.Duration, st *stats, obs observer) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range f.agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait := time.Duration(rand.Int64N(int64(interval + jitter)))
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				f.pollOnce(ctx, i, st, obs)
				wait = interval + time.Duration(rand.Int64N(int64(jitter)+1))
			}
		}()
	}
	return &wg
}

func (f *fleet) pollOnce(ctx context.Context, i int, st *stats, obs observer) {
	st.begin()
	start := time.Now()
	res, err := f.agents[i](ctx, f.last[i])
	if ctx.Err() != nil { // stopped mid-poll: not a measurement
		st.inflight.Add(-1)
		return
	}
	st.end(time.Since(start), err)
	if err == nil {
		f.last[i] = res.Commit
		if obs != nil {
			obs(i, res)
		}
	}
}

// stepResult is one offered load held for a while.
type stepResult struct {
	offered, achieved float64 // polls/s
	p50, p99          time.Duration
	cpuPerPoll        time.Duration
	busy              float64 // server core share used
	bytesPerPoll      float64
	errors            int
}

// step offers rate polls/s (the hosts' interval set to match) for d.
func (f *fleet) step(t testing.TB, rate float64, d time.Duration) stepResult {
	t.Helper()
	period := time.Duration(float64(len(f.agents)) / rate * float64(time.Second))
	interval, jitter := period*10/11, period/11 // jitter a tenth of the interval, as 30 s of 5 min
	ctx, cancel := context.WithCancel(context.Background())
	st := &stats{}
	cpu0, bytes0 := f.cpu(), f.served()
	wg := f.run(ctx, interval, jitter, st, nil)
	time.Sleep(d)
	cpu1, bytes1 := f.cpu(), f.served()
	cancel()
	wg.Wait()
	ok, failed := st.count()
	r := stepResult{offered: rate, achieved: float64(ok) / d.Seconds(), p50: st.quantile(0.5), p99: st.quantile(0.99),
		busy: (cpu1 - cpu0).Seconds() / d.Seconds(), errors: failed}
	if ok > 0 {
		r.cpuPerPoll = (cpu1 - cpu0) / time.Duration(ok)
		r.bytesPerPoll = float64(bytes1-bytes0) / float64(ok)
	}
	if failed > 0 {
		t.Logf("%s at %.0f polls/s: %d failed polls, last: %v", f.name, rate, failed, st.lastErr)
	}
	return r
}
