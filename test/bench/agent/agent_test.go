// Package agent measures the agent's no-op pass (issue 5): every host of a
// fleet polls, so a pass that finds nothing to do must be nearly free.
//
// BenchmarkNoopPasses sets up a fleet as the end-to-end tests do (a fleet
// repository served by git http-backend, a signed image in Debian's
// docker-registry, a host in the bootc simulator already on that image,
// converged by one real `bootsync reconcile`), then runs the real
// `bootsync agent` binary with a short interval for b.N no-op passes (run
// it with -benchtime 100x) and stops it with SIGTERM. One op is one pass;
// the image is digest-pinned in one sub-benchmark and a tag locked in
// bootsync.lock in the other. Per pass:
//
//	agent-cpu-ms/op        the agent's own user+sys CPU (/proc/<pid>/stat utime+stime,
//	                       sampled as the first and the last measured pass end); goal < 20
//	bootc-cpu-ms/op        CPU of the bootc processes the agent waited for (cutime+cstime):
//	                       the simulator here, real bootc on a host
//	bootc-calls/op         simulator invocations (its call log)
//	pass-wall-ms/op        wall time of a pass as the agent logs it
//	git-requests/op        requests the Git server received; must be 1
//	registry-requests/op   requests the registry received; must be 0
//
// Per run:
//
//	peak-RSS-MB            VmHWM of the agent just before SIGTERM; goal < 40
//	rss-anon-MB            its anonymous resident set then (heap, stacks, runtime)
//	rss-file-MB            its file-backed resident set then (the executable's pages)
//	startup-cpu-ms         the agent's own CPU from exec until its first pass (which
//	                       loads the fleet repository) was done
//
// Baselines, measured in the same run so that figures can be read as
// ratios:
//
//	base-bootc-status-cpu-ms   one `bootc status` of the simulator alone
//	base-ls-remote-cpu-ms      one `git ls-remote` of the branch against the same
//	                           server (git-remote-http included)
//	base-help-cpu-ms           one `bootsync --help`: start-up alone
//	base-help-peak-RSS-MB      its peak RSS: the runtime and the executable alone
//
// BenchmarkNoopPassInProcess runs the same pass in this process through
// reconcile.Agent.Pass, wired as cmd/bootsync wires the agent, for
// -cpuprofile and -benchmem. test/bench/agent.sh runs both and prints a
// table.
package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// envInterval overrides the agent's pass interval (default 50ms).
const envInterval = "BOOTSYNC_BENCH_INTERVAL"

// baselineRuns is how many times each baseline command runs; its figure
// is the mean.
const baselineRuns = 20

func TestMain(m *testing.M) {
	code := m.Run()
	bootcsim.Cleanup()
	if bootsyncBuild.dir != "" {
		os.RemoveAll(bootsyncBuild.dir)
	}
	os.Exit(code)
}

func passInterval(tb testing.TB) time.Duration {
	tb.Helper()
	v := os.Getenv(envInterval)
	if v == "" {
		return 50 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q is not a positive duration", envInterval, v)
	}
	return d
}

func BenchmarkNoopPasses(b *testing.B) {
	for _, p := range pinnings {
		b.Run(p.name, func(b *testing.B) {
			interval := passInterval(b)
			f, h := setup(b, p, interval)
			statusCPU := baselineBootcStatus(b, h)
			lsRemoteCPU := baselineLsRemote(b, f.URL)
			idleCPU, idleRSS := baselineIdleProcess(b)

			f.Git.Reset()
			f.Registry.Reset()
			run := runAgent(b, h, b.N, interval)
			// The Git server records a request when its CGI handler
			// returns, which can be a moment after the agent has read the
			// refs it needed.
			time.Sleep(200 * time.Millisecond)
			gitRequests, regRequests := f.Git.Count(), len(f.Registry.Requests())

			n := float64(b.N)
			b.ReportMetric(0, "ns/op") // wall time per op is mostly the interval: meaningless
			b.ReportMetric(ms(run.window.Self)/n, "agent-cpu-ms/op")
			b.ReportMetric(ms(run.window.Children)/n, "bootc-cpu-ms/op")
			b.ReportMetric(float64(run.bootcCalls)/n, "bootc-calls/op")
			b.ReportMetric(ms(run.passWall)/n, "pass-wall-ms/op")
			b.ReportMetric(float64(gitRequests)/float64(run.passes), "git-requests/op")
			b.ReportMetric(float64(regRequests)/float64(run.passes), "registry-requests/op")
			b.ReportMetric(float64(run.memory.PeakRSS)/(1<<20), "peak-RSS-MB")
			b.ReportMetric(float64(run.memory.RSSAnon)/(1<<20), "rss-anon-MB")
			b.ReportMetric(float64(run.memory.RSSFile)/(1<<20), "rss-file-MB")
			b.ReportMetric(ms(run.startup), "startup-cpu-ms")
			b.ReportMetric(ms(statusCPU), "base-bootc-status-cpu-ms")
			b.ReportMetric(ms(lsRemoteCPU), "base-ls-remote-cpu-ms")
			b.ReportMetric(ms(idleCPU), "base-help-cpu-ms")
			b.ReportMetric(float64(idleRSS)/(1<<20), "base-help-peak-RSS-MB")

			// The request budget is a requirement, not a figure.
			if gitRequests != run.passes {
				b.Errorf("%d no-op passes made %d Git requests, want one each: %v", run.passes, gitRequests, f.Git.Requests())
			}
			if regRequests != 0 {
				b.Errorf("%d no-op passes made %d registry requests, want none: %v", run.passes, regRequests, f.Registry.Requests())
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// agentRun is what one `bootsync agent` process did.
type agentRun struct {
	// window is the CPU spent from the end of the first pass to the end of
	// the last measured one: exactly the measured passes and the waits
	// between them.
	window     cpuTimes
	startup    time.Duration // own CPU until the first pass was done
	bootcCalls int           // simulator invocations in the window
	passWall   time.Duration // sum of the measured passes' logged durations
	memory     memory        // just before SIGTERM
	passes     int           // every pass the process ran, the first included
}

// Lines of the agent's log (slog text) that the benchmark reads.
var (
	passDoneRE   = regexp.MustCompile(`\bmsg="pass done" .*\bstate=(\S+) .*\bduration=(\S+)$`)
	passFailedRE = regexp.MustCompile(`\bmsg="pass failed"`)
)

// runAgent runs `bootsync agent` on h until measured passes after the
// first one are done, then stops it with SIGTERM. Every pass must be a
// no-op: one that fails, changes something or calls bootc for anything
// but status ends the benchmark, since its figures would measure
// something else.
func runAgent(b *testing.B, h *fleettest.Host, measured int, interval time.Duration) agentRun {
	b.Helper()
	callsBefore := len(h.Sim.Calls(b))
	cmd := exec.Command(bootsyncBinary(b), "agent", "--config", h.Config)
	cmd.Env = h.Sim.Env()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	l := &agentLog{b: b, h: h, cmd: cmd, measured: measured, reached: make(chan struct{}), eof: make(chan struct{})}

	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatalf("start bootsync agent: %v", err)
	}
	b.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-l.eof
			_ = cmd.Wait()
		}
	})
	go l.follow(stderr)

	timeout := 2*time.Minute + time.Duration(measured)*(interval+5*time.Second)
	select {
	case <-l.reached:
	case <-l.eof:
		_ = cmd.Wait()
		b.Fatalf("bootsync agent exited before %d passes: %v\n%s", measured+1, cmd.ProcessState, l.logs())
	case <-time.After(timeout):
		b.Fatalf("bootsync agent did not run %d passes in %v\n%s", measured+1, timeout, l.logs())
	}
	b.StopTimer()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	select {
	case <-l.eof:
	case <-time.After(time.Minute):
		b.Fatalf("bootsync agent did not stop within a minute of SIGTERM\n%s", l.logs())
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("bootsync agent ended with %v after SIGTERM\n%s", err, l.logs())
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.problem != "" {
		b.Fatalf("%s; the measurement is void\n%s", l.problem, strings.Join(l.tail, "\n"))
	}
	// Only `bootc status` each pass and `bootc --version` once: anything
	// else would change the host.
	for _, c := range h.Sim.Calls(b)[callsBefore:] {
		if len(c.Argv) == 0 || (c.Argv[0] != "status" && c.Argv[0] != "--version") {
			b.Fatalf("a no-op pass ran bootc %s", strings.Join(c.Argv, " "))
		}
	}
	return l.run
}

// agentLog follows the log of the agent runAgent started: it keeps the
// last lines for failure messages, counts the passes and samples the
// process as the first and the last measured pass end.
type agentLog struct {
	b        *testing.B
	h        *fleettest.Host
	cmd      *exec.Cmd
	measured int

	mu       sync.Mutex
	tail     []string // the last lines, for failure messages
	problem  string
	run      agentRun
	first    cpuTimes
	firstLog int
	done     bool          // the measurement is over (or void)
	reached  chan struct{} // closed when the last measured pass is done or a problem was seen
	eof      chan struct{} // closed when the agent closed its stderr
}

func (l *agentLog) logs() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.tail, "\n")
}

func (l *agentLog) sample() (cpuTimes, int) {
	t, err := readCPUTimes(l.cmd.Process.Pid)
	if err != nil {
		l.b.Error(err)
	}
	calls, err := callCount(l.h.Sim.LogPath)
	if err != nil {
		l.b.Error(err)
	}
	return t, calls
}

// follow reads the log as it is written: the samples are taken the
// moment a pass reports it is done, while the agent waits for the next
// one.
func (l *agentLog) follow(stderr io.Reader) {
	defer close(l.eof)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		if l.tail = append(l.tail, line); len(l.tail) > 50 {
			l.tail = l.tail[1:]
		}
		stop := false
		switch m := passDoneRE.FindStringSubmatch(line); {
		case passFailedRE.MatchString(line):
			l.problem, stop = "a pass failed", !l.done
		case m != nil:
			stop = l.passDone(m[1], m[2])
		}
		if stop {
			l.done = true
			close(l.reached)
		}
		l.mu.Unlock()
	}
}

// passDone counts a pass that logged its state and duration, with mu
// held, and reports whether the measurement is over.
func (l *agentLog) passDone(state, duration string) (stop bool) {
	l.run.passes++
	if reconcile.State(state) != reconcile.StateConverged {
		l.problem = "a pass was not a no-op (state " + state + ")"
		return !l.done
	}
	if l.done {
		return false // a pass that ran while SIGTERM was on its way
	}
	switch {
	case l.run.passes == 1:
		l.first, l.firstLog = l.sample()
		l.run.startup = l.first.Self
	case l.run.passes == l.measured+1:
		last, lastLog := l.sample()
		l.run.window = cpuTimes{Self: last.Self - l.first.Self, Children: last.Children - l.first.Children}
		l.run.bootcCalls = lastLog - l.firstLog
		var err error
		if l.run.memory, err = readMemory(l.cmd.Process.Pid); err != nil {
			l.b.Error(err)
		}
		stop = true
	}
	if l.run.passes > 1 {
		d, err := time.ParseDuration(duration)
		if err != nil {
			l.problem, stop = fmt.Sprintf("pass duration %q: %v", duration, err), true
		}
		l.run.passWall += d
	}
	return stop
}

// callCount counts the simulator's call log lines (one per invocation)
// without decoding them, so sampling stays cheap.
func callCount(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("read bootc simulator call log: %w", err)
	}
	return strings.Count(string(data), "\n"), nil
}

// baselineBootcStatus is the mean user+sys CPU of one `bootc status
// --format=json --format-version=1` of the simulator on h, the call the
// agent makes each pass.
func baselineBootcStatus(b *testing.B, h *fleettest.Host) time.Duration {
	b.Helper()
	var total time.Duration
	for range baselineRuns {
		cmd := h.Sim.Command(context.Background(), "status", "--format=json", "--format-version=1")
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("bootc status: %v\n%s", err, stderr.String())
		}
		total += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return total / baselineRuns
}

// baselineLsRemote is the mean user+sys CPU of one `git ls-remote` of the
// branch against url: what an agent written around the git CLI would
// spend just to learn that nothing changed.
func baselineLsRemote(b *testing.B, url string) time.Duration {
	b.Helper()
	var total time.Duration
	for range baselineRuns {
		cmd := exec.Command("git", "ls-remote", url, "refs/heads/main")
		cmd.Env = gittest.Env()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git ls-remote %s: %v\n%s", url, err, out)
		}
		// git waits for git-remote-http, so its rusage includes it.
		total += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return total / baselineRuns
}

// baselineIdleProcess is what `bootsync --help` costs: the mean user+sys
// CPU and the peak RSS of a bootsync process that only starts (runtime and
// package initialization, the executable's pages) and exits. The peak RSS
// comes from GNU time, which forks rather than vforks, so the child's
// maxrss is its own.
func baselineIdleProcess(b *testing.B) (time.Duration, int64) {
	b.Helper()
	const gnuTime = "/usr/bin/time"
	if _, err := os.Stat(gnuTime); err != nil {
		b.Fatalf("the bootsync --help baseline needs GNU time (Debian package time): %v", err)
	}
	report := filepath.Join(b.TempDir(), "time")
	var total time.Duration
	var peak int64
	for range baselineRuns {
		cmd := exec.Command(gnuTime, "-f", "%M", "-o", report, bootsyncBinary(b), "--help")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("bootsync --help: %v\n%s", err, out)
		}
		// GNU time's own CPU is a few hundred microseconds at most; its
		// rusage includes the bootsync child it waited for.
		total += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		data, err := os.ReadFile(report)
		if err != nil {
			b.Fatal(err)
		}
		var kb int64
		if _, err := fmt.Sscan(string(data), &kb); err != nil {
			b.Fatalf("GNU time report %q: %v", data, err)
		}
		peak = max(peak, kb*1024)
	}
	return total / baselineRuns, peak
}

// BenchmarkNoopPassInProcess runs the no-op pass in this process, for
// profiles: go test -bench NoopPassInProcess -cpuprofile cpu.out. The Git
// server and the registry proxy run in this process too; focus the
// profile on reconcile.(*Agent).Pass.
func BenchmarkNoopPassInProcess(b *testing.B) {
	for _, p := range pinnings {
		b.Run(p.name, func(b *testing.B) {
			f, h := setup(b, p, time.Hour)
			agent := inProcessAgent(b, f, h)
			ctx := context.Background()
			// The first pass in a process loads the fleet repository; the
			// agent keeps the resolved spec for the following ones.
			if _, err := agent.Pass(ctx, reconcile.PassOptions{}); err != nil {
				b.Fatal(err)
			}
			f.Git.Reset()
			f.Registry.Reset()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				res, err := agent.Pass(ctx, reconcile.PassOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if res.Plan.State != reconcile.StateConverged || len(res.Plan.Steps) != 0 {
					b.Fatalf("pass was not a no-op: %+v", res.Plan)
				}
			}
			b.StopTimer()
			time.Sleep(200 * time.Millisecond) // see BenchmarkNoopPasses
			b.ReportMetric(float64(f.Git.Count())/float64(b.N), "git-requests/op")
			b.ReportMetric(float64(len(f.Registry.Requests()))/float64(b.N), "registry-requests/op")
		})
	}
}

// inProcessAgent wires a reconcile.Agent for h as cmd/bootsync's
// buildAgent does from the same configuration (see fleettest.Fleet.NewHost).
func inProcessAgent(b *testing.B, f *fleettest.Fleet, h *fleettest.Host) *reconcile.Agent {
	b.Helper()
	root := h.Sim.Root
	src, err := gitsource.New(f.URL, gitsource.WithCacheDir(filepath.Join(h.StateDir, "git")), gitsource.WithRef("main"), gitsource.WithAllowHTTP())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = src.Close() })
	reg, err := registry.New(registry.WithAuthRoot(root), registry.WithInsecureRegistries(f.Registry.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	drv, err := bootc.New(bootc.WithPath(h.Sim.Bin), bootc.WithEnv(h.Sim.SimEnv()...))
	if err != nil {
		b.Fatal(err)
	}
	etcw, err := etcoverlay.New(root, filepath.Join(h.StateDir, "etc"),
		etcoverlay.WithBootIDFile(filepath.Join(root, "proc/sys/kernel/random/boot_id")))
	if err != nil {
		b.Fatal(err)
	}
	agent, err := reconcile.New(reconcile.Config{
		Host:          h.Name,
		StateDir:      h.StateDir,
		Root:          root,
		RebootCommand: []string{h.Sim.Bin, "sim", "reboot", "--shutdown"},
		Trust:         policy.HostTrust{SigningKeys: []string{f.KeyFile}, RequireSignatures: true},
		GitRemote:     f.URL,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}, reconcile.Deps{Source: src, Registry: reg, Bootc: drv, Etc: etcw, Metrics: reconcile.NewMetrics()})
	if err != nil {
		b.Fatal(err)
	}
	return agent
}
