package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. Linux exports
// them in USER_HZ, which is 100 on every architecture (it is ABI).
const userHZ = 100

// cpuTimes are the CPU times of a running process from /proc/<pid>/stat.
type cpuTimes struct {
	Self     time.Duration // utime+stime: the process itself, all its threads
	Children time.Duration // cutime+cstime: the children it has waited for
}

// readCPUTimes reads the CPU times of a live process. Unlike the rusage
// that wait4 returns at the end, it can be sampled between passes and it
// keeps the process's own time apart from its children's.
func readCPUTimes(pid int) (cpuTimes, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read CPU times of process %d: %w", pid, err)
	}
	return parseStat(pid, data)
}

// parseStat parses /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so the fields
// are counted from the last ')'.
func parseStat(pid int, data []byte) (cpuTimes, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return cpuTimes{}, fmt.Errorf("parse /proc/%d/stat: no command name in %q", pid, data)
	}
	// fields[0] is field 3 (state); utime..cstime are fields 14..17.
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 15 {
		return cpuTimes{}, fmt.Errorf("parse /proc/%d/stat: %d fields after the command name, want at least 15", pid, len(fields))
	}
	var ticks [4]int64
	for i := range ticks {
		v, err := strconv.ParseInt(fields[11+i], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("parse /proc/%d/stat field %d: %w", pid, 14+i, err)
		}
		ticks[i] = v
	}
	tick := time.Second / userHZ
	return cpuTimes{
		Self:     time.Duration(ticks[0]+ticks[1]) * tick,
		Children: time.Duration(ticks[2]+ticks[3]) * tick,
	}, nil
}

// Memory figures of a live process from /proc/<pid>/status, in bytes.
type memory struct {
	PeakRSS int64 // VmHWM: the largest resident set so far
	RSSAnon int64 // RssAnon now: heap, stacks, runtime data
	RSSFile int64 // RssFile now: mapped files, the executable's pages above all
}

// readMemory reads the memory figures of a live process. Its peak RSS is
// VmHWM: the rusage maxrss of a child is no substitute, since Go starts
// children with vfork and Linux carries the parent's resident set over into
// the child's maxrss at exec, and RUSAGE_CHILDREN takes the largest of
// every waited-for descendant (the agent forks bootc each pass).
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	var m memory
	fields := map[string]*int64{"VmHWM": &m.PeakRSS, "RssAnon": &m.RSSAnon, "RssFile": &m.RSSFile}
	seen := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		dst := fields[key]
		if !ok || dst == nil {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return memory{}, fmt.Errorf("read memory of process %d: unexpected %s %q", pid, key, rest)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("read memory of process %d: %s: %w", pid, key, err)
		}
		*dst = v * 1024
		seen++
	}
	if err := sc.Err(); err != nil {
		return memory{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	if seen != len(fields) {
		return memory{}, fmt.Errorf("read memory of process %d: VmHWM, RssAnon or RssFile missing", pid)
	}
	return m, nil
}

// The CPU split must be right for any process name: a shell copied to a
// file named with spaces and parentheses burns CPU itself and in a
// subshell it waits for; /proc must show both, and together no more than
// the rusage wait4 reports when it ends (fields read one off would give
// start times or page counts, far larger).
func TestReadCPUTimesSplitsSelfAndChildren(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("a POSIX shell is required: %v", err)
	}
	odd := filepath.Join(t.TempDir(), "a) (b c")
	data, err := os.ReadFile(sh)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(odd, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const busy = `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`
	cmd := exec.Command(odd, "-c", "("+busy+"); "+busy+"; echo ready; read x || true")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("shell said %q, %v", line, err)
	}
	got, err := readCPUTimes(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if got.Self <= 0 || got.Children <= 0 {
		t.Errorf("CPU times = %+v, want both the shell's own and its subshell's time", got)
	}
	stdin.Close()
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	total := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	// /proc rounds to ticks; rusage is exact.
	if got.Self+got.Children > total+2*time.Second/userHZ {
		t.Errorf("/proc says %v+%v, more than the %v rusage reports for the whole process", got.Self, got.Children, total)
	}
}

// The figures are read in bytes and from the right lines: after this
// process touched 64 MiB of heap, its peak and its anonymous resident set
// are at least that, and its file-backed pages (the test binary) are not.
func TestReadMemorySeesTouchedHeap(t *testing.T) {
	const size = 64 << 20
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	got, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got.PeakRSS < size || got.RSSAnon < size {
		t.Errorf("memory = %+v after touching %d bytes of heap", got, size)
	}
	if got.RSSFile <= 0 || got.RSSFile >= got.RSSAnon {
		t.Errorf("memory = %+v: the file-backed part should be the test binary's pages, less than the heap", got)
	}
	if buf[size-4096] != 1 {
		t.Fatal("buffer lost") // keeps buf alive until after the read
	}
}
