// Package hostile holds the inputs a hostile or careless fleet-repository
// author and a flaky network produce, for the tests and the benchmark that
// show bootsync ends each of them in bounded time and memory: runaway
// templates, oversized files, servers that accept a connection and never
// answer. It also runs a command while measuring its wall time and peak RSS.
package hostile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is how a measured command ended.
type Result struct {
	Wall   time.Duration
	MaxRSS int64 // bytes, the largest resident set of the process (and of its waited-for children)
	Exit   int   // -1 when killed by a signal
	// Killed says why the watchdog killed it: "" (it ended on its own),
	// "time" or "memory".
	Killed string
	Stdout string
	Stderr string
}

// String is a one-line summary for logs and tables.
func (r Result) String() string {
	end := fmt.Sprintf("exit %d", r.Exit)
	if r.Killed != "" {
		end = "killed (" + r.Killed + " cap)"
	}
	return fmt.Sprintf("%.1f s, %d MB, %s: %s", r.Wall.Seconds(), r.MaxRSS>>20, end, FirstLine(r.Stderr))
}

// ErrorLine is the "error: …" line of a command's stderr when there is
// one, else its first line, shortened.
func ErrorLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "error: ") {
			return FirstLine(l)
		}
	}
	return FirstLine(s)
}

// FirstLine is the first non-empty line of s, shortened.
func FirstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = l[:200] + "…"
			}
			return l
		}
	}
	return ""
}

// Caps bound a measured command: the watchdog kills it (SIGKILL) when it
// runs longer than Wall or its resident set grows beyond RSS, so that a
// runaway of the code under test cannot take the machine down.
type Caps struct {
	Wall time.Duration
	RSS  int64 // bytes
}

// Run starts cmd and measures it until it ends (Stdout and Stderr are
// captured unless already set). An error means cmd could not be started.
func Run(cmd *exec.Cmd, caps Caps) (Result, error) {
	r, err := Start(cmd, caps)
	if err != nil {
		return Result{}, err
	}
	return r.Wait()
}

// Running is a measured command that has started.
type Running struct {
	cmd            *exec.Cmd
	start          time.Time
	stdout, stderr *bytes.Buffer
	cancel         context.CancelFunc
	killed         chan string
	timeFile       string       // GNU time's report of the peak RSS
	peak           atomic.Int64 // the largest RSS the watchdog saw (GNU time reports nothing when killed)
}

// gnuTime measures peak RSS: the rusage of a child of this (large) test
// process would include this process's memory (Linux charges the memory a
// vfork'ed child shares before exec to the child), GNU time's child is
// clean.
const gnuTime = "/usr/bin/time"

// Start starts cmd under the watchdog, through GNU time when installed.
func Start(cmd *exec.Cmd, caps Caps) (*Running, error) {
	r := &Running{cmd: cmd, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, killed: make(chan string, 1)}
	if cmd.Stdout == nil {
		cmd.Stdout = r.stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = r.stderr
	}
	if _, err := os.Stat(gnuTime); err == nil {
		f, err := os.CreateTemp("", "bootsync-time-")
		if err != nil {
			return nil, err
		}
		f.Close()
		r.timeFile = f.Name()
		cmd.Args = append([]string{gnuTime, "-q", "-f", "%M", "-o", r.timeFile}, cmd.Args...)
		cmd.Path = gnuTime
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go watch(ctx, cmd.Process.Pid, r.start, caps, r.killed, &r.peak)
	return r, nil
}

// Signal sends sig to the measured process (not to GNU time, which would
// not pass it on).
func (r *Running) Signal(sig syscall.Signal) error {
	pid := r.cmd.Process.Pid
	if r.timeFile != "" {
		if kids := children(pid); len(kids) > 0 {
			pid = kids[0]
		}
	}
	return syscall.Kill(pid, sig)
}

// Kill kills the process and everything it started.
func (r *Running) Kill() { _ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) }

// Wait waits for the process to end and returns how it ended.
func (r *Running) Wait() (Result, error) {
	err := r.cmd.Wait()
	r.cancel()
	res := Result{Wall: time.Since(r.start), Stdout: r.stdout.String(), Stderr: r.stderr.String()}
	select {
	case res.Killed = <-r.killed:
	default:
	}
	res.Exit = r.cmd.ProcessState.ExitCode()
	if r.timeFile != "" {
		b, _ := os.ReadFile(r.timeFile)
		os.Remove(r.timeFile)
		lines := strings.Fields(string(b))
		if len(lines) > 0 {
			kb, _ := strconv.ParseInt(lines[len(lines)-1], 10, 64)
			res.MaxRSS = kb * 1024
		}
		if res.Exit > 128 && res.Killed != "" {
			res.Exit = -1
		}
	} else if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.MaxRSS = ru.Maxrss * 1024
	}
	res.MaxRSS = max(res.MaxRSS, r.peak.Load())
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, err
	}
	return res, nil
}

func watch(ctx context.Context, pid int, start time.Time, caps Caps, killed chan<- string, peak *atomic.Int64) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		why := ""
		now := treeRSS(pid)
		if now > peak.Load() {
			peak.Store(now)
		}
		switch {
		case caps.Wall > 0 && time.Since(start) > caps.Wall:
			why = "time"
		case caps.RSS > 0 && now > caps.RSS:
			why = "memory"
		}
		if why != "" {
			killed <- why
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return
		}
	}
}

// treeRSS is the resident set of pid and its descendants, in bytes.
func treeRSS(pid int) int64 {
	n := rss(pid)
	for _, c := range children(pid) {
		n += treeRSS(c)
	}
	return n
}

func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// rss is the current resident set of pid in bytes (0 when unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
