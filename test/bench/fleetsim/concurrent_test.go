package fleetsim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// The concurrent simulation: N hosts, each the agent's real poll code in a
// goroutine at an interval with jitter, against git http-backend and
// docker-registry pinned to one core. Run with test/bench/fleetsim/run.sh; it
// prints figures and asserts none (skipped unless FLEETSIM=1).

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// skipUnlessLoad keeps the load tests out of make test: they run minutes
// and assert nothing. test/bench/fleetsim/run.sh sets FLEETSIM=1.
func skipUnlessLoad(t *testing.T) {
	if os.Getenv("FLEETSIM") == "" || testing.Short() {
		t.Skip("a load test: run test/bench/fleetsim/run.sh (FLEETSIM=1)")
	}
}

func hosts() int { return envInt("FLEETSIM_HOSTS", 200) }

func stepFor() time.Duration { return time.Duration(envInt("FLEETSIM_STEP_SECONDS", 8)) * time.Second }

func gitFleet(t testing.TB) (*fleet, *gittest.Repo) {
	t.Helper()
	g := startGit(t)
	repo := gittest.NewRepo(t, gitserver.InitBare(t, filepath.Join(g.root, "fleet.git")))
	repo.Commit("fleet", fleetFiles())
	repo.Push()
	f := &fleet{name: "git", cpu: func() time.Duration { return g.cpu(t) }, served: g.served.Load}
	for range hosts() {
		src, err := gitsource.New(g.url("fleet.git"), gitsource.WithCacheDir(t.TempDir()), gitsource.WithRef("main"), gitsource.WithAllowHTTP())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		f.agents = append(f.agents, src.Poll)
	}
	f.prime(t)
	return f, repo
}

type ociFleet struct {
	*fleet
	publish func() string
}

func newOCIFleet(t testing.TB, cfg registryConfig) ociFleet {
	t.Helper()
	reg := startRegistry(t, cfg)
	bare := t.TempDir()
	gittest.Git(t, bare, nil, "init", "-q", "--bare")
	repo := gittest.NewRepo(t, bare)
	repo.Commit("fleet", fleetFiles())
	url := "oci://" + reg.addr + "/ops/fleet:main"
	pubClient := newClient(t, reg.addr, nil)
	key := newSigningKey(t)
	publishAt(t, repo.Dir, url, pubClient, key)
	var read atomic.Int64
	f := &fleet{name: "oci (" + cfg.name + ")", cpu: func() time.Duration { return reg.cpu(t) }, served: read.Load}
	for range hosts() {
		src, err := ocisource.New(url, ocisource.WithCacheDir(t.TempDir()), ocisource.WithRegistry(newClient(t, reg.addr, &read)),
			ocisource.WithFleetKeys(key.pub))
		if err != nil {
			t.Fatal(err)
		}
		f.agents = append(f.agents, src.Poll)
	}
	f.prime(t)
	next := 0
	return ociFleet{fleet: f, publish: func() string {
		next++
		c := repo.Commit("merge", map[string]string{fmt.Sprintf("hosts/new-%d.yaml", next): "apiVersion: bootsync.dev/v1alpha1\nkind: Host\n"})
		publishAt(t, repo.Dir, url, pubClient, key)
		return c
	}}
}

// newClient is a host's registry client: no retries within a poll, a new
// connection per poll, bytes read counted into read when not nil.
func newClient(t testing.TB, addr string, read *atomic.Int64) *registry.Client {
	t.Helper()
	opts := []registry.Option{registry.WithInsecureRegistries(addr), registry.WithAuthRoot(t.TempDir()), registry.WithRetry(registry.NoRetry)}
	if read != nil {
		opts = append(opts, registry.WithTransport(countingTransport(read)))
	}
	c, err := registry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// prime makes every host's first poll (the clone or first download).
func (f *fleet) prime(t testing.TB) {
	t.Helper()
	f.last = make([]string, len(f.agents))
	for i, poll := range f.agents {
		res, err := poll(context.Background(), "")
		if err != nil {
			t.Fatalf("%s host %d first poll: %v", f.name, i, err)
		}
		f.last[i] = res.Commit
	}
}

// sustain steps the offered load up until p99 reaches 1 s or the hosts
// no longer get the polls they ask for, and returns the last step that
// held: the polls/s one server core sustains.
func sustain(t *testing.T, f *fleet, rates []float64) stepResult {
	var best stepResult
	t.Logf("%-28s %8s %8s %8s %8s %10s %6s %9s", "transport", "offered", "polls/s", "p50", "p99", "cpu/poll", "core", "B/poll")
	for _, rate := range rates {
		r := f.step(t, rate, stepFor())
		t.Logf("%-28s %8.0f %8.1f %8s %8s %10s %5.0f%% %9.0f", f.name, r.offered, r.achieved, r.p50.Round(time.Millisecond),
			r.p99.Round(time.Millisecond), r.cpuPerPoll.Round(10*time.Microsecond), 100*r.busy, r.bytesPerPoll)
		if r.p99 >= time.Second || r.achieved < 0.8*r.offered || r.errors > 0 {
			break
		}
		best = r
	}
	return best
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func rates(env string, def []float64) []float64 {
	var out []float64
	for _, f := range strings.Fields(os.Getenv(env)) {
		if v, err := strconv.ParseFloat(f, 64); err == nil {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

func TestSustainedPollsGit(t *testing.T) {
	skipUnlessLoad(t)
	f, _ := gitFleet(t)
	t.Logf("load average before: %s; %d hosts; server on CPU %q", loadavg(), len(f.agents), serverCPU())
	best := sustain(t, f, rates("FLEETSIM_GIT_RATES", []float64{10, 20, 30, 40, 60, 80}))
	summarize(t, f.name, best)
}

func TestSustainedPollsOCI(t *testing.T) {
	skipUnlessLoad(t)
	for _, cfg := range []registryConfig{productionConfig, quietConfig, testConfig} {
		f := newOCIFleet(t, cfg)
		t.Logf("load average before: %s; %d hosts; server on CPU %q", loadavg(), len(f.agents), serverCPU())
		best := sustain(t, f.fleet, rates("FLEETSIM_OCI_RATES", []float64{50, 100, 200, 300, 400, 600, 800}))
		summarize(t, f.name, best)
	}
}

func summarize(t *testing.T, name string, best stepResult) {
	if best.achieved == 0 {
		t.Logf("%s: no step held p99 < 1 s", name)
		return
	}
	perCore := 300 * 1e6 / float64(best.cpuPerPoll.Microseconds())
	t.Logf("SUMMARY %s: sustains %.0f polls/s (p99 %s, core %.0f%%), %s CPU/poll → %.0f hosts/core at 5 min, %.1f cores for 100,000 hosts, %.0f B/poll (load average %s)",
		name, best.achieved, best.p99.Round(time.Millisecond), 100*best.busy, best.cpuPerPoll.Round(10*time.Microsecond), perCore, 100000/perCore,
		best.bytesPerPoll, loadavg())
}

func TestMergeStorm(t *testing.T) {
	skipUnlessLoad(t)
	interval := time.Duration(envInt("FLEETSIM_STORM_INTERVAL_SECONDS", 10)) * time.Second
	jitter := interval / 10
	g, repo := gitFleet(t)
	n := 0
	report := func(name string, r stormResult) {
		t.Logf("STORM %s: %d hosts at %s+%s (%.0f polls/s): %d on the new commit after %s (window %s), %d fetched, peak %d polls in flight, %d KiB served (%.0f B/host), server CPU %s, %d failed polls (load average %s)",
			name, hosts(), interval, jitter, r.steadyPerSec, r.converged, r.converge.Round(100*time.Millisecond), r.window, r.fetched, r.peak,
			r.bytes/1024, float64(r.bytes)/float64(hosts()), r.cpu.Round(time.Millisecond), r.errors, loadavg())
	}
	report(g.name, g.storm(t, interval, jitter, func() string {
		n++
		c := repo.Commit("merge", map[string]string{fmt.Sprintf("hosts/new-%d.yaml", n): "apiVersion: bootsync.dev/v1alpha1\nkind: Host\n"})
		repo.Push()
		return c
	}))
	o := newOCIFleet(t, productionConfig)
	report(o.name, o.storm(t, interval, jitter, o.publish))
}

// TestProfileRegistry writes a CPU profile of docker-registry serving
// no-change polls to $FLEETSIM_PPROF (go tool pprof -top docker-registry FILE).
func TestProfileRegistry(t *testing.T) {
	out := os.Getenv("FLEETSIM_PPROF")
	if out == "" {
		t.Skip("set FLEETSIM_PPROF=FILE")
	}
	cfg := quietConfig
	cfg.debugAddr = "127.0.0.1:" + strconv.Itoa(envInt("FLEETSIM_PPROF_PORT", 5991))
	f := newOCIFleet(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	period := time.Duration(float64(len(f.agents)) / 100 * float64(time.Second))
	wg := f.run(ctx, period*10/11, period/11, &stats{}, nil)
	defer wg.Wait()
	defer cancel()
	resp, err := http.Get("http://" + cfg.debugAddr + "/debug/pprof/profile?seconds=15")
	if err != nil {
		t.Fatalf("profile docker-registry: %v", err)
	}
	defer resp.Body.Close()
	file, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := io.Copy(file, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("profile docker-registry: %s, %v", resp.Status, err)
	}
}
