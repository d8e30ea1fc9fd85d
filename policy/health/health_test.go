package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

// Settings for tests. testTimeout is generous: where a timeout is not the
// behaviour under test, a loaded machine must not make it fire. hangTimeout
// is for checks whose other side never answers (a server that blocks until
// released, sleep 60): there the timeout is certain to fire, and only how
// soon matters for the suite's speed.
const (
	testTimeout  = 30 * time.Second
	hangTimeout  = 300 * time.Millisecond
	testInterval = 10 * time.Millisecond
)

func newRunner(t testing.TB, opts ...Option) *Runner {
	t.Helper()
	r, err := NewRunner(opts...)
	if err != nil {
		t.Fatal(err)
	}
	r.opts.killDelay = 100 * time.Millisecond
	return r
}

func spec(name string, required bool, retries int) hostspec.HealthCheck {
	return hostspec.HealthCheck{Name: name, Required: required, Retries: retries,
		Timeout: hostspec.Duration(testTimeout), Interval: hostspec.Duration(testInterval)}
}

func mustCheck(t testing.TB, hc hostspec.HealthCheck) Check {
	t.Helper()
	c, err := FromSpec(hc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runOne runs a single check without grace and returns its result.
func runOne(t testing.TB, r *Runner, c Check) Result {
	t.Helper()
	rep, err := r.Run(context.Background(), []Check{c}, time.Time{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("got %d results, want 1", len(rep.Results))
	}
	if rep.OK != (rep.Results[0].OK || !rep.Results[0].Required) {
		t.Fatalf("report verdict %v disagrees with result %+v", rep.OK, rep.Results[0])
	}
	return rep.Results[0]
}

// fakeSystemctl writes a systemctl stand-in that answers `is-active -- UNIT`
// from dir/UNIT: one state per line, consumed one per call (the last line
// repeats), and logs every call to dir/calls.
func fakeSystemctl(t *testing.T, states map[string]string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	for unit, s := range states {
		if err := os.WriteFile(filepath.Join(dir, unit), []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `#!/bin/sh
dir='` + dir + `'
echo "$*" >> "$dir/calls"
if [ "$#" -ne 3 ] || [ "$1" != is-active ] || [ "$2" != -- ]; then echo "unexpected arguments: $*" >&2; exit 64; fi
f="$dir/$3"
[ -f "$f" ] || { echo inactive; exit 3; }
state=$(head -n 1 "$f")
if [ "$(wc -l < "$f")" -gt 1 ]; then tail -n +2 "$f" > "$f.next" && mv "$f.next" "$f"; fi
echo "$state"
[ "$state" = active ]
`
	path = filepath.Join(dir, "systemctl")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func callCount(t *testing.T, dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestSystemdCheckPassesOnlyForActiveUnit(t *testing.T) {
	systemctl, dir := fakeSystemctl(t, map[string]string{"sshd.service": "active", "api.service": "failed"})
	r := newRunner(t, WithSystemctl(systemctl))

	ok := spec("sshd", true, 2)
	ok.Systemd = "sshd.service"
	if res := runOne(t, r, mustCheck(t, ok)); !res.OK || res.Attempts != 1 || res.Error != "" {
		t.Fatalf("active unit: %+v, want OK after 1 attempt", res)
	}

	bad := spec("api", true, 2)
	bad.Systemd = "api.service"
	res := runOne(t, r, mustCheck(t, bad))
	if res.OK || res.Attempts != 3 {
		t.Fatalf("failed unit: %+v, want failure after retries+1 = 3 attempts", res)
	}
	if !strings.Contains(res.Error, "unit api.service is failed") || strings.TrimSpace(res.Output) != "failed" {
		t.Fatalf("failed unit: error %q / output %q should say the unit state", res.Error, res.Output)
	}
	if got := callCount(t, dir); got != 1+3 {
		t.Fatalf("systemctl ran %d times, want 4 (1 + 3 attempts)", got)
	}

	missing := spec("ghost", false, 0)
	missing.Systemd = "ghost.service"
	if res := runOne(t, r, mustCheck(t, missing)); res.OK || !strings.Contains(res.Error, "is inactive") {
		t.Fatalf("unknown unit: %+v, want inactive", res)
	}
}

func TestSystemdUnitActivatingDuringGraceThenActive(t *testing.T) {
	systemctl, dir := fakeSystemctl(t, map[string]string{"db.service": "activating\nactivating\nactivating\nactive"})
	r := newRunner(t, WithSystemctl(systemctl))
	c := spec("db", true, 0) // no retries: only the grace period lets it recover
	c.Systemd = "db.service"
	rep, err := r.Run(context.Background(), []Check{mustCheck(t, c)}, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Results[0]
	if !rep.OK || !res.OK || res.Attempts != 4 {
		t.Fatalf("got %+v, want OK on the 4th attempt", res)
	}
	if !strings.Contains(res.Error, "is activating") {
		t.Fatalf("error %q should keep the last failure (activating) for status", res.Error)
	}
	if callCount(t, dir) != 4 {
		t.Fatalf("systemctl ran %d times, want 4", callCount(t, dir))
	}
}

func TestSystemctlMissingIsAClearFailure(t *testing.T) {
	r := newRunner(t, WithSystemctl(filepath.Join(t.TempDir(), "no-systemctl")))
	c := spec("sshd", true, 0)
	c.Systemd = "sshd.service"
	res := runOne(t, r, mustCheck(t, c))
	if res.OK || !strings.Contains(res.Error, "systemctl is-active sshd.service") || !strings.Contains(res.Error, "no such file") {
		t.Fatalf("got %+v, want a failure naming systemctl and the missing file", res)
	}
}

// systemctl itself can hang (a wedged D-Bus); the attempt is killed at its
// timeout like any command.
func TestHangingSystemctlTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "systemctl")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, WithSystemctl(path))
	c := spec("sshd", true, 0)
	c.Systemd = "sshd.service"
	c.Timeout = hostspec.Duration(hangTimeout)
	res := runOne(t, r, mustCheck(t, c))
	if res.OK || !strings.Contains(res.Error, "timed out after 300ms") || !strings.Contains(res.Error, "signal: killed") {
		t.Fatalf("got %+v, want a killed, timed-out attempt", res)
	}
}

func startHTTP(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPCheckStatusAndExpectedBody(t *testing.T) {
	srv := startHTTP(t, func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/healthz":
			fmt.Fprint(w, `{"status":"ready","db":"ok"}`)
		case "/down":
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		case "/big":
			// The marker only appears after the first MiB.
			w.Write([]byte(strings.Repeat("x", MaxHTTPBody)))
			w.Write([]byte("ready"))
		case "/redirect":
			http.Redirect(w, req, "/healthz", http.StatusFound)
		default:
			http.NotFound(w, req)
		}
	})
	r := newRunner(t)
	cases := []struct {
		name, path, expect string
		ok                 bool
		errHas, outHas     string
	}{
		{"2xx", "/healthz", "", true, "", ""},
		{"2xx with expected body", "/healthz", `"status":"ready"`, true, "", ""},
		{"2xx without expected body", "/healthz", "maintenance", false, `do not contain "maintenance"`, `"db":"ok"`},
		{"5xx", "/down", "", false, "status 503 Service Unavailable", "database unreachable"},
		{"404", "/nope", "", false, "status 404 Not Found", ""},
		{"expected text past 1 MiB", "/big", "ready", false, `do not contain "ready"`, "more bytes truncated"},
		{"redirect followed", "/redirect", "ready", true, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := spec("api", true, 0)
			hc.HTTP, hc.Expect = srv.URL+tc.path, tc.expect
			res := runOne(t, r, mustCheck(t, hc))
			if res.OK != tc.ok || !strings.Contains(res.Error, tc.errHas) || !strings.Contains(res.Output, tc.outHas) {
				t.Fatalf("got ok=%v error=%q output=%.200q; want ok=%v, error containing %q, output containing %q",
					res.OK, res.Error, res.Output, tc.ok, tc.errHas, tc.outHas)
			}
			if len(res.Output) > DefaultOutputLimit+100 {
				t.Fatalf("output is %d bytes, want at most about %d", len(res.Output), DefaultOutputLimit)
			}
		})
	}
}

func TestHTTPCheckServerThatNeverAnswersTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := startHTTP(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/stream" {
			// Headers, then a body that never finishes.
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("starting"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	r := newRunner(t)
	hc := spec("api", true, 1)
	hc.HTTP = srv.URL + "/hang"
	hc.Timeout = hostspec.Duration(hangTimeout)
	res := runOne(t, r, mustCheck(t, hc))
	if res.OK || res.Attempts != 2 || !strings.Contains(res.Error, "timed out after 300ms") {
		t.Fatalf("hung server: %+v, want 2 timed-out attempts", res)
	}

	// A 200 whose body never ends is healthy without expect (the status is
	// the answer) but times out when the body must be searched.
	hc.HTTP = srv.URL + "/stream"
	hc.Timeout = hostspec.Duration(testTimeout)
	if res := runOne(t, r, mustCheck(t, hc)); !res.OK {
		t.Fatalf("streaming 200 without expect: %+v, want OK", res)
	}
	hc.Timeout = hostspec.Duration(hangTimeout)
	hc.Expect = "ready"
	if res := runOne(t, r, mustCheck(t, hc)); res.OK || !strings.Contains(res.Error, "timed out") {
		t.Fatalf("streaming 200 with expect: %+v, want a timeout", res)
	}
}

// neverAcceptingAddr returns a loopback address whose connects hang: a
// listener with backlog 0 that never accepts, whose one queue slot is
// taken, so the kernel drops further SYNs like a blackholed host.
func neverAcceptingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break // the queue is full: connects now hang
		}
		t.Cleanup(func() { conn.Close() })
		if i > 16 {
			t.Fatal("listener keeps accepting connections into its queue")
		}
	}
	return addr
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	r := newRunner(t)
	cases := []struct {
		name, addr string
		ok         bool
		errHas     string
	}{
		{"listening", ln.Addr().String(), true, ""},
		{"refused", closedAddr, false, "connection refused"},
		{"never accepted", neverAcceptingAddr(t), false, "timed out after 300ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := spec("port", true, 1)
			hc.TCP = tc.addr
			if !tc.ok {
				hc.Timeout = hostspec.Duration(hangTimeout) // refused at once, or never accepted
			}
			res := runOne(t, r, mustCheck(t, hc))
			if res.OK != tc.ok || !strings.Contains(res.Error, tc.errHas) {
				t.Fatalf("got %+v, want ok=%v and error containing %q", res, tc.ok, tc.errHas)
			}
			if !tc.ok && res.Attempts != 2 {
				t.Fatalf("got %d attempts, want 2", res.Attempts)
			}
		})
	}
}

func TestCommandCheck(t *testing.T) {
	r := newRunner(t)
	cases := []struct {
		name   string
		argv   []string
		ok     bool
		errHas string
		outHas string
	}{
		{"exit 0", []string{"true"}, true, "", ""},
		{"exit 1", []string{"false"}, false, "false: exit status 1", ""},
		{"output of both streams", []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, false, "exit status 3", "to-stdout\nto-stderr"},
		// argv is executed directly: no shell expands $HOME or splits on ';'.
		{"no shell", []string{"echo", "$HOME;", "ok"}, true, "", "$HOME; ok"},
		{"missing program", []string{"/nonexistent/check"}, false, "no such file or directory", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := spec("cmd", true, 0)
			hc.Command = tc.argv
			res := runOne(t, r, mustCheck(t, hc))
			if res.OK != tc.ok || !strings.Contains(res.Error, tc.errHas) || !strings.Contains(res.Output, tc.outHas) {
				t.Fatalf("got ok=%v error=%q output=%q; want ok=%v, error containing %q, output containing %q",
					res.OK, res.Error, res.Output, tc.ok, tc.errHas, tc.outHas)
			}
		})
	}
}

func TestCommandOutputKeepsTheEnd(t *testing.T) {
	r := newRunner(t, WithOutputLimit(64))
	hc := spec("noisy", true, 0)
	hc.Command = []string{"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo FINAL ERROR >&2; exit 1"}
	res := runOne(t, r, mustCheck(t, hc))
	if res.OK || !strings.HasSuffix(res.Output, "FINAL ERROR\n") || !strings.HasPrefix(res.Output, "[") || !strings.Contains(res.Output, "bytes truncated]") {
		t.Fatalf("output %q should keep the last 64 bytes and say how much was dropped", res.Output)
	}
	if len(res.Output) > 64+40 {
		t.Fatalf("output is %d bytes, want about 64", len(res.Output))
	}
}

// processGone reports whether pid has exited (gone or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// A hanging command is killed at its timeout together with everything it
// started.
func TestHangingCommandIsKilledWithItsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	r := newRunner(t)
	hc := spec("hang", true, 0)
	hc.Timeout = hostspec.Duration(hangTimeout)
	hc.Command = []string{"sh", "-c", `sleep 60 & echo $! > "$0/child"; echo $$ > "$0/parent"; wait`, dir}
	res := runOne(t, r, mustCheck(t, hc))
	if res.OK || !strings.Contains(res.Error, "timed out after 300ms") || !strings.Contains(res.Error, "killed") {
		t.Fatalf("got %+v, want a killed, timed-out attempt", res)
	}
	for _, name := range []string{"parent", "child"} {
		pid := readPID(t, filepath.Join(dir, name))
		// The kernel may take a moment to finish tearing down a SIGKILLed
		// process that was reparented; this is not a timing assertion.
		for i := 0; i < 100 && !processGone(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if !processGone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s process %d is still running after the check timed out", name, pid)
		}
	}

	// A plain `sleep 60` (the brief's example) is killed too.
	hc.Command = []string{"sleep", "60"}
	if res := runOne(t, r, mustCheck(t, hc)); res.OK || !strings.Contains(res.Error, "signal: killed") {
		t.Fatalf("sleep 60: %+v, want killed at the timeout", res)
	}
}

// A command that succeeds but leaves a background process holding its
// output passes, and the leftover process is ended.
func TestCommandLeavingBackgroundProcessPassesAndIsCleanedUp(t *testing.T) {
	dir := t.TempDir()
	r := newRunner(t)
	hc := spec("daemonizes", true, 0)
	hc.Command = []string{"sh", "-c", `sleep 60 & echo $! > "$0/child"; echo started`, dir}
	res := runOne(t, r, mustCheck(t, hc))
	if !res.OK || !strings.Contains(res.Output, "started") {
		t.Fatalf("got %+v, want OK with its output", res)
	}
	pid := readPID(t, filepath.Join(dir, "child"))
	for i := 0; i < 100 && !processGone(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !processGone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("background process %d outlived the check", pid)
	}
}

func TestProbeCheck(t *testing.T) {
	r := newRunner(t)
	ok, err := ProbeCheck("probe-ok", "somewhere", func(ctx context.Context) error { return nil }, true)
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := ProbeCheck("probe-bad", "somewhere", func(ctx context.Context) error { return errors.New("remote hung up") }, true)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// A probe that ignores its context must not hang the run.
	stuck, _ := ProbeCheck("probe-stuck", "somewhere", func(ctx context.Context) error { <-release; return nil }, true)
	for _, c := range []*Check{&ok, &bad, &stuck} {
		c.Timeout, c.Interval, c.Retries = testTimeout, testInterval, 1
	}
	stuck.Timeout = hangTimeout
	rep, err := r.Run(context.Background(), []Check{stuck, bad, ok}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	for _, res := range rep.Results {
		got[res.Name] = res
	}
	if rep.OK || !got["probe-ok"].OK || got["probe-bad"].OK || got["probe-stuck"].OK {
		t.Fatalf("report %+v: want only probe-ok passing", rep)
	}
	if !strings.Contains(got["probe-bad"].Error, "remote hung up") || !strings.Contains(got["probe-stuck"].Error, "timed out after 300ms: probe did not return") {
		t.Fatalf("errors: bad=%q stuck=%q", got["probe-bad"].Error, got["probe-stuck"].Error)
	}
	if names := []string{rep.Results[0].Name, rep.Results[1].Name, rep.Results[2].Name}; names[0] != "probe-bad" || names[2] != "probe-stuck" {
		t.Fatalf("results %v are not sorted by name", names)
	}
	if _, err := ProbeCheck("x", "", nil, true); err == nil {
		t.Fatal("ProbeCheck accepted a nil probe")
	}
}

// Non-required checks are reported but do not change the verdict.
func TestNonRequiredFailureIsReportedButVerdictIsHealthy(t *testing.T) {
	r := newRunner(t)
	good := spec("good", true, 0)
	good.Command = []string{"true"}
	optional := spec("optional", false, 1)
	optional.Command = []string{"sh", "-c", "echo disk 91% full; exit 1"}
	rep, err := r.Run(context.Background(), []Check{mustCheck(t, good), mustCheck(t, optional)}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Err() != nil || len(rep.Failed()) != 0 {
		t.Fatalf("verdict %v / %v, want healthy", rep.OK, rep.Err())
	}
	opt := rep.Results[1]
	if opt.Name != "optional" || opt.OK || opt.Required || opt.Attempts != 2 || !strings.Contains(opt.Output, "disk 91% full") {
		t.Fatalf("optional check result %+v should be reported as failed with its output", opt)
	}

	// The same failure on a required check fails the verdict, and the
	// error names the check, its target and its last error.
	req := spec("disk", true, 0)
	req.Command = optional.Command
	rep, err = r.Run(context.Background(), []Check{mustCheck(t, good), mustCheck(t, req)}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Failed()) != 1 || rep.Failed()[0].Name != "disk" {
		t.Fatalf("report %+v: want the required check to fail the verdict", rep)
	}
	if e := rep.Err(); e == nil || !strings.Contains(e.Error(), `disk (command sh -c "echo disk 91% full; exit 1") failed after 1 attempts: `) {
		t.Fatalf("Err() = %v", e)
	}
}

// fakeClock advances only when a check sleeps. Use it with a single check:
// the attempts then happen at exact virtual times.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func TestGracePeriodDecidesWhenFailuresCount(t *testing.T) {
	boot := time.Date(2026, 7, 18, 2, 0, 0, 0, time.UTC)
	cases := []struct {
		name         string
		grace        time.Duration // zero: no grace
		healthyAfter time.Duration // virtual time at which the probe starts passing; 0 = never
		wantOK       bool
		wantAttempts int
		wantDuration time.Duration
	}{
		// Default policy: grace 5m, interval 10s, retries 3. A check that never
		// passes is tried until the grace has passed: at 0s, 10s, ..., 300s.
		{"never healthy, 5m grace", 5 * time.Minute, 0, false, 31, 5 * time.Minute},
		// Without grace it gets retries+1 = 4 attempts, 10s apart.
		{"never healthy, no grace", 0, 0, false, 4, 30 * time.Second},
		// A grace shorter than the retries: the retries still apply.
		{"never healthy, 15s grace", 15 * time.Second, 0, false, 4, 30 * time.Second},
		// A service that needs two minutes to come up passes during grace.
		{"healthy after 2m", 5 * time.Minute, 2 * time.Minute, true, 13, 2 * time.Minute},
		// ...but not without grace once its retries are used up.
		{"healthy after 2m, no grace", 0, 2 * time.Minute, false, 4, 30 * time.Second},
		// Healthy just as the grace ends: the attempt at 300s passes.
		{"healthy at the deadline", 5 * time.Minute, 5 * time.Minute, true, 31, 5 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: boot}
			r := newRunner(t, WithClock(clock))
			probe := func(ctx context.Context) error {
				if tc.healthyAfter > 0 && !clock.Now().Before(boot.Add(tc.healthyAfter)) {
					return nil
				}
				return errors.New("connection refused")
			}
			c, err := ProbeCheck("api", "http://127.0.0.1:8080", probe, true)
			if err != nil {
				t.Fatal(err)
			}
			var graceUntil time.Time
			if tc.grace > 0 {
				graceUntil = boot.Add(tc.grace)
			}
			rep, err := r.Run(context.Background(), []Check{c}, graceUntil)
			if err != nil {
				t.Fatal(err)
			}
			res := rep.Results[0]
			if res.OK != tc.wantOK || rep.OK != tc.wantOK || res.Attempts != tc.wantAttempts || time.Duration(res.Duration) != tc.wantDuration {
				t.Fatalf("got ok=%v attempts=%d after %s; want ok=%v attempts=%d after %s",
					res.OK, res.Attempts, time.Duration(res.Duration), tc.wantOK, tc.wantAttempts, tc.wantDuration)
			}
		})
	}
}

// With the real clock: a check that becomes healthy during a short grace
// passes, a check that never does fails once the grace is over, and both
// run concurrently in one report.
func TestGraceWithRealClock(t *testing.T) {
	r := newRunner(t)
	start := time.Now()
	var slowAttempts atomic.Int32
	slow, _ := ProbeCheck("slow-start", "", func(ctx context.Context) error {
		if slowAttempts.Add(1) < 3 {
			return errors.New("not ready yet")
		}
		return nil
	}, true)
	never, _ := ProbeCheck("never", "", func(ctx context.Context) error { return errors.New("down") }, true)
	for _, c := range []*Check{&slow, &never} {
		c.Timeout, c.Interval, c.Retries = testTimeout, 20*time.Millisecond, 0
	}
	graceUntil := start.Add(2 * time.Second) // ample for slow-start's three attempts on a loaded machine
	rep, err := r.Run(context.Background(), []Check{slow, never}, graceUntil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !rep.Results[1].OK || rep.Results[1].Attempts < 2 || rep.Results[0].OK {
		t.Fatalf("report %+v: want slow-start OK after retrying, never failed", rep)
	}
	if time.Now().Before(graceUntil) {
		t.Fatalf("the verdict on a failing check came before the grace deadline")
	}
}

func TestCancelledRunIsNotAVerdict(t *testing.T) {
	r := newRunner(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	c, _ := ProbeCheck("api", "", func(ctx context.Context) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}, true)
	c.Timeout = time.Minute
	go func() { <-started; cancel() }()
	rep, err := r.Run(ctx, []Check{c}, time.Now().Add(time.Hour))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted before a verdict") {
		t.Fatalf("Run error = %v, want an interruption wrapping context.Canceled", err)
	}
	if rep.OK || rep.Results[0].Attempts != 1 {
		t.Fatalf("partial report %+v", rep)
	}
}

func TestFromSpecValidates(t *testing.T) {
	cases := []struct {
		name string
		hc   hostspec.HealthCheck
		want string
	}{
		{"no type", hostspec.HealthCheck{Name: "x"}, "needs one of systemd, http, tcp or command"},
		{"two types", hostspec.HealthCheck{Name: "x", Systemd: "a.service", TCP: "127.0.0.1:1"}, "sets systemd and tcp"},
		{"no name", hostspec.HealthCheck{Systemd: "a.service"}, "name is empty"},
		{"bad url", hostspec.HealthCheck{Name: "x", HTTP: "ftp://host/x"}, "not an http:// or https:// URL"},
		{"bad tcp", hostspec.HealthCheck{Name: "x", TCP: "localhost"}, "not a host:port address"},
		{"bad port", hostspec.HealthCheck{Name: "x", TCP: "localhost:http"}, "no valid port"},
		{"expect without http", hostspec.HealthCheck{Name: "x", TCP: "127.0.0.1:80", Expect: "ok"}, "expect is only valid for http"},
		{"empty program", hostspec.HealthCheck{Name: "x", Command: []string{""}}, "empty program name"},
		{"option as unit", hostspec.HealthCheck{Name: "x", Systemd: "--all"}, "not a unit name"},
		{"negative retries", hostspec.HealthCheck{Name: "x", Systemd: "a.service", Retries: -1}, "must not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.hc.Source = hostspec.Source{File: "fleet.yaml", Line: 12}
			_, err := FromSpec(tc.hc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "fleet.yaml:12") {
				t.Fatalf("FromSpec(%+v) = %v, want an error at fleet.yaml:12 containing %q", tc.hc, err, tc.want)
			}
		})
	}

	c, err := FromSpec(hostspec.HealthCheck{Name: "api", HTTP: "https://user:secret@example.com/healthz"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout != hostspec.DefaultCheckTimeout || c.Interval != hostspec.DefaultCheckInterval || strings.Contains(c.Target, "secret") {
		t.Fatalf("check %+v: want default timeout/interval and a redacted target", c)
	}
	if _, err := FromSpecs([]hostspec.HealthCheck{{Name: "a"}, {Name: "b", TCP: "x"}}); err == nil ||
		!strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("FromSpecs must report every invalid check: %v", err)
	}
}

func TestRunRejectsInvalidInput(t *testing.T) {
	r := newRunner(t)
	a, _ := ProbeCheck("a", "", func(context.Context) error { return nil }, true)
	if _, err := r.Run(context.Background(), []Check{a, a}, time.Time{}); err == nil || !strings.Contains(err.Error(), `duplicate check name "a"`) {
		t.Fatalf("duplicate names: %v", err)
	}
	if _, err := r.Run(context.Background(), []Check{{Name: "literal", Kind: KindTCP, Timeout: time.Second, Interval: time.Second}}, time.Time{}); err == nil ||
		!strings.Contains(err.Error(), "not built with FromSpec") {
		t.Fatalf("hand-built check: %v", err)
	}
	for _, opt := range []Option{WithSystemctl(""), WithHTTPClient(nil), WithClock(nil), WithOutputLimit(0)} {
		if _, err := NewRunner(opt); err == nil {
			t.Fatal("NewRunner accepted an invalid option")
		}
	}
}

func BenchmarkCommandCheck(b *testing.B) {
	r := newRunner(b)
	c := mustCheck(b, hostspec.HealthCheck{Name: "true", Command: []string{"true"}, Required: true})
	for b.Loop() {
		if rep, err := r.Run(context.Background(), []Check{c}, time.Time{}); err != nil || !rep.OK {
			b.Fatal(err, rep)
		}
	}
}

func BenchmarkHTTPCheck(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ready") }))
	defer srv.Close()
	r := newRunner(b)
	c := mustCheck(b, hostspec.HealthCheck{Name: "api", HTTP: srv.URL, Expect: "ready", Required: true})
	for b.Loop() {
		if rep, err := r.Run(context.Background(), []Check{c}, time.Time{}); err != nil || !rep.OK {
			b.Fatal(err, rep)
		}
	}
}

// Baselines for the two benchmarks above: the bare operation without the
// runner (no process group, output capture, timeout or report).
func BenchmarkBaselineExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineHTTPGet(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ready") }))
	defer srv.Close()
	client := defaultHTTPClient()
	for b.Loop() {
		resp, err := client.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
