package etcoverlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/faultpoint"
)

// The crash test re-executes this test binary as a child that runs one
// agent pass (Plan, Apply, RunOnChange) and SIGKILLs itself at the Nth
// crash point: no deferred cleanup runs, exactly as when the agent is killed
// or the host loses power (the page cache survives a SIGKILL; the ordering
// of fsyncs, which is what a power loss tests, is the same code path).
const (
	envCrashChild = "BOOTSYNC_ETC_CRASH_CHILD" // crash point to die at
	envCrashRoot  = "BOOTSYNC_ETC_CRASH_ROOT"
	envCrashState = "BOOTSYNC_ETC_CRASH_STATE"
	envCrashBoot  = "BOOTSYNC_ETC_CRASH_BOOT_ID"
	envCrashCtl   = "BOOTSYNC_ETC_CRASH_SYSTEMCTL"
)

func TestMain(m *testing.M) {
	if at := os.Getenv(envCrashChild); at != "" {
		os.Exit(crashChild(at))
	}
	os.Exit(m.Run())
}

// crashChild runs one pass towards crashSpecAfter and dies at crash point
// number at (1-based). It exits 0 when the pass finished before reaching it.
func crashChild(at string) int {
	n, err := strconv.Atoi(at)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	count := 0
	faultpoint.Arm(func(step string) {
		count++
		if count == n {
			fmt.Fprintf(os.Stderr, "crash at point %d: %s\n", n, step)
			faultpoint.Kill()
		}
	})
	w, err := New(os.Getenv(envCrashRoot), os.Getenv(envCrashState),
		WithBootIDFile(os.Getenv(envCrashBoot)), WithSystemctl(os.Getenv(envCrashCtl)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	p, err := w.Plan(ctx, crashSpecAfter())
	if err == nil {
		err = p.Err()
	}
	var res *Result
	if err == nil {
		res, err = w.Apply(ctx, p)
	}
	if err == nil {
		err = w.RunOnChange(ctx, res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("completed after %d crash points\n", count)
	return 0
}

// crashSpecBefore is what the host converged to before the crashing pass.
func crashSpecBefore() []hostspec.EtcFile {
	return []hostspec.EtcFile{
		etcFile("/etc/chrony.conf", "server a\n", restart("chronyd.service")),
		etcFile("/etc/app/app.conf", "v1\n", mode(0o640), owner("chrony", "chrony"), reload("app.service")),
		etcFile("/etc/motd", "hello\n"),
		etcFile("/etc/old.conf", "old\n", restart("old.service")),
		etcFile("/etc/ssh/sshd_config", "PermitRootLogin no\n", mode(0o600), restart("sshd.service")),
	}
}

// crashSpecAfter exercises every kind of change: content and metadata
// updates, creates in new directories, a systemd drop-in, an absent entry,
// a prune and a restore of a file bootsync took over.
func crashSpecAfter() []hostspec.EtcFile {
	return []hostspec.EtcFile{
		etcFile("/etc/chrony.conf", "server b\n", restart("chronyd.service")),
		etcFile("/etc/app/app.conf", "v1\n", mode(0o600), owner("chrony", "chrony"), reload("app.service")),
		etcFile("/etc/motd", "hello\n"),
		etcFile("/etc/new.d/10-new.conf", "new\n", restart("new.service")),
		etcFile("/etc/systemd/system/foo.service.d/override.conf", "[Service]\nNice=5\n", restart("foo.service")),
		absent("/etc/gone.conf"),
	}
}

func TestCrashAtEveryStepConverges(t *testing.T) {
	ctx := context.Background()
	points := 0
	for n := 1; ; n++ {
		f := newFixture(t)
		f.put(t, "/etc/ssh/sshd_config", "# image default\n", 0o644) // taken over, then put back
		f.put(t, "/etc/gone.conf", "legacy\n", 0o644)
		f.put(t, "/etc/hostname", "web-01\n", 0o644) // never managed
		f.pass(t, crashSpecBefore())
		f.calls(t)

		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(),
			envCrashChild+"="+strconv.Itoa(n), envCrashRoot+"="+f.root, envCrashState+"="+f.state,
			envCrashBoot+"="+f.bootIDFile, envCrashCtl+"="+filepath.Join(filepath.Dir(f.callLog), "systemctl"))
		out, err := cmd.CombinedOutput()
		var exitErr *exec.ExitError
		killed := errors.As(err, &exitErr) && exitErr.Sys().(syscall.WaitStatus).Signaled() &&
			exitErr.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		if err != nil && !killed {
			t.Fatalf("child for crash point %d failed: %v\n%s", n, err, out)
		}
		step := strings.TrimSpace(string(out))

		// The next pass: what bootsync found must not look like anyone
		// else's doing, and it must converge.
		p := f.plan(t, crashSpecAfter())
		if len(p.Drift) != 0 || len(p.Problems) != 0 {
			t.Fatalf("after %s: spurious drift %v / problems %v", step, driftSummary(p), p.Err())
		}
		res, err := f.w.Apply(ctx, p)
		if err != nil {
			t.Fatalf("after %s: apply: %v", step, err)
		}
		if err := f.w.RunOnChange(ctx, res); err != nil {
			t.Fatalf("after %s: run onChange: %v", step, err)
		}
		assertConvergedAfterCrash(t, f, step)

		// Every unit a change needs was restarted or reloaded at least once
		// across the killed pass and the recovery.
		calls := f.calls(t)
		for _, want := range []string{"daemon-reload", "restart chronyd.service", "reload app.service", "restart new.service",
			"restart foo.service", "restart sshd.service", "restart old.service"} {
			if !slices.Contains(calls, want) {
				t.Fatalf("after %s: %q never ran (calls: %q)", step, want, calls)
			}
		}
		if p := f.plan(t, crashSpecAfter()); !p.NoOp() || len(p.Drift) != 0 {
			t.Fatalf("after %s: a further pass is not a no-op: changes %v records %d owed %+v", step, changeSummary(p), len(p.records), p.Owed)
		}

		if !killed {
			points = n - 1
			break
		}
	}
	// Temporary-file creation, write, fsync, rename and directory fsync for
	// each of 5 writes, 3 removals, intent and outcome records, the
	// original kept, and every systemctl action: a lot fewer would mean the
	// hooks are not reached.
	if points < 40 {
		t.Fatalf("only %d crash points were exercised", points)
	}
	t.Logf("converged after a crash at each of %d points", points)
}

func assertConvergedAfterCrash(t *testing.T, f *fixture, step string) {
	t.Helper()
	for _, e := range crashSpecAfter() {
		if e.Absent {
			if f.exists(t, e.Path) {
				t.Fatalf("after %s: %s should be absent", step, e.Path)
			}
			continue
		}
		if got := f.read(t, e.Path); got != string(e.Content) {
			t.Fatalf("after %s: %s = %q, want %q", step, e.Path, got, e.Content)
		}
		m, _, _ := f.stat(t, e.Path)
		if m != uint32(e.Mode) {
			t.Fatalf("after %s: %s mode %04o, want %s", step, e.Path, m, e.Mode)
		}
	}
	if f.exists(t, "/etc/old.conf") {
		t.Fatalf("after %s: /etc/old.conf not pruned", step)
	}
	if got := f.read(t, "/etc/ssh/sshd_config"); got != "# image default\n" {
		t.Fatalf("after %s: sshd_config = %q, want the original back", step, got)
	}
	if m, _, _ := f.stat(t, "/etc/ssh/sshd_config"); m != 0o644 {
		t.Fatalf("after %s: sshd_config mode %04o, want the original 0644", step, m)
	}
	if f.read(t, "/etc/hostname") != "web-01\n" {
		t.Fatalf("after %s: an unmanaged file changed", step)
	}
	if tmp := tempFilesUnder(t, f.root); len(tmp) != 0 {
		t.Fatalf("after %s: temporary files left: %v", step, tmp)
	}
	names, err := readDirNames(f.state)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") {
			t.Fatalf("after %s: temporary file left in the state directory: %s", step, n)
		}
	}
	// Only the original put back is kept (a rollback may bring bootsync's
	// version back); everything else is collected.
	if orig, _ := readDirNames(filepath.Join(f.state, OriginalsDir)); !slices.Equal(orig, []string{shaOf("# image default\n")}) {
		t.Fatalf("after %s: kept originals %v, want exactly the put-back original", step, orig)
	}
	managed, err := f.w.Managed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range managed {
		if m.Interrupted {
			t.Fatalf("after %s: %s still marked interrupted", step, m.Path)
		}
		paths = append(paths, m.Path)
	}
	equalStrings(t, "managed after "+step, paths, []string{
		"/etc/app/app.conf", "/etc/chrony.conf", "/etc/motd", "/etc/new.d/10-new.conf", "/etc/systemd/system/foo.service.d/override.conf",
	})
}
