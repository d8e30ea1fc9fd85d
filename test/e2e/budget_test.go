package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/hostile"
)

// Issue 15: a bad commit or a silent server cannot take down an agent or a
// CI runner. Each case runs the real binary under a watchdog and asserts
// that it ends well within a bound (generous: several times the configured
// limit, plus start-up on a loaded machine), with a clear error, with its
// peak RSS bounded, and, on a host, with nothing applied. The same cases
// with the default limits are measured by test/bench/budgets.

// cliRSS bounds the peak RSS of a CLI command that meets hostile input; the
// commands without limits reached 1.7 to more than 4 GB on these cases.
const cliRSS = 300 << 20

func budgetEnv(t *testing.T, limits string) hostile.Env {
	// The watchdog stops a regression long before it hurts the machine.
	return hostile.Env{T: t, Bin: bootsyncBin, Limits: limits, Caps: hostile.Caps{Wall: 3 * time.Minute, RSS: 2 << 30}}
}

// checkEnded asserts a measured command ended on its own, in time, within
// memory, and with exit status exit and an error containing each of want.
func checkEnded(t *testing.T, r hostile.Result, bound time.Duration, rss int64, exit int, want ...string) {
	t.Helper()
	t.Logf("%s", r)
	if r.Killed != "" {
		t.Fatalf("killed by the watchdog (%s): %s", r.Killed, r)
	}
	if r.Wall > bound {
		t.Errorf("took %s, want at most %s", r.Wall, bound)
	}
	if r.MaxRSS > rss {
		t.Errorf("peak RSS %d MB, want at most %d MB", r.MaxRSS>>20, rss>>20)
	}
	if r.Exit != exit {
		t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", r.Exit, exit, r.Stdout, r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr+r.Stdout, w) {
			t.Errorf("output lacks %q:\nstdout: %s\nstderr: %s", w, r.Stdout, r.Stderr)
		}
	}
}

func TestRunawayTemplatesFailValidateWithinTheirBudget(t *testing.T) {
	const limits = "templateSteps: 200000\ntemplateMemory: 16Mi"
	for _, c := range []struct {
		name, tmpl string
		want       []string
	}{
		{"silent range", hostile.SilentRange, []string{"files/runaway.tmpl:1:", "host web-001", "limits.templateSteps = 200000"}},
		{"nested ranges", hostile.NestedRange, []string{"files/runaway.tmpl:1:", "host web-001", "limits.templateSteps = 200000"}},
		{"doubling", hostile.Doubling, []string{"files/runaway.tmpl:1:", "host web-001", "limits.templateMemory = 16 MiB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := hostile.ValidateTemplate(budgetEnv(t, limits), c.tmpl)
			checkEnded(t, r, 30*time.Second, cliRSS, 1, c.want...)
		})
	}
}

func TestOversizedFilesFailWithinTheirLimits(t *testing.T) {
	t.Run("15 MiB template on 100 hosts", func(t *testing.T) {
		r := hostile.DiffBigTemplate(budgetEnv(t, ""), 100, 15<<20)
		checkEnded(t, r, 60*time.Second, cliRSS, 2, "files/big.tmpl is 15 MiB, larger than limits.fileSize = 4 MiB")
	})
	t.Run("200 MB file", func(t *testing.T) {
		r := hostile.RenderBigFile(budgetEnv(t, ""), 200<<20)
		checkEnded(t, r, 60*time.Second, cliRSS, 1, "fleet.yaml:", "files/big.txt is 200 MiB, larger than limits.fileSize = 4 MiB")
	})
	t.Run("20 MB text diff", func(t *testing.T) {
		r := hostile.DiffBigText(budgetEnv(t, ""), 20<<20)
		checkEnded(t, r, 60*time.Second, cliRSS, 2, "files/big.txt is 20 MiB, larger than limits.fileSize = 4 MiB")
	})
	t.Run("20 MB text diff allowed by fleet.yaml", func(t *testing.T) {
		r := hostile.DiffBigText(budgetEnv(t, "fileSize: 32Mi"), 20<<20)
		checkEnded(t, r, 60*time.Second, cliRSS, 0, `"omitted": "size"`, "Diff not shown, larger than the 256 KiB shown inline: 20 MiB")
	})
}

func TestSilentServersFailWithinTheNetworkTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	bound := 3*timeout + 10*time.Second
	env := func(t *testing.T) hostile.Env {
		e := budgetEnv(t, "")
		e.NetTimeout = timeout.String()
		return e
	}
	t.Run("git over HTTP", func(t *testing.T) {
		r, s := hostile.ValidateSilentGit(env(t))
		checkEnded(t, r, bound, cliRSS, 1, "did not answer within the network timeout of 2s")
		if s.Accepted() != 1 {
			t.Errorf("%d connections: a silent server was retried", s.Accepted())
		}
	})
	t.Run("git over SSH (agent)", func(t *testing.T) {
		r, h, _ := hostile.AgentSilentSSH(env(t))
		checkEnded(t, r, bound, cliRSS, 1, "did not answer within the network timeout of 2s")
		if st := h.Status(); st.LastError == nil || st.LastError.Reason != "git-timeout" {
			t.Errorf("last error %+v, want reason git-timeout", st.LastError)
		}
		if v := verbs(h.Calls()); len(v) != 0 {
			t.Errorf("bootc was asked to %q", v)
		}
	})
	t.Run("registry", func(t *testing.T) {
		r, _ := hostile.VerifySilentRegistry(env(t))
		checkEnded(t, r, bound, cliRSS, 2, "timeout")
	})
	t.Run("fleetlock (agent)", func(t *testing.T) {
		r, h, v1 := hostile.AgentSilentFleetLock(env(t))
		checkEnded(t, r, bound, cliRSS, 1, "FleetLock pre-reboot", "the server did not answer within 2s")
		if st := h.Status(); st.LastError == nil || st.LastError.Reason != "fleetlock" {
			t.Errorf("last error %+v, want reason fleetlock", st.LastError)
		}
		if h.Booted() != digestOf(v1) || h.Boots() != 0 {
			t.Errorf("the host rebooted without a FleetLock slot: booted %s, %d boots", h.Booted(), h.Boots())
		}
	})
}

func TestKeyFileMustBeASmallRegularFile(t *testing.T) {
	r := hostile.VerifyKeyDevZero(budgetEnv(t, ""))
	checkEnded(t, r, 20*time.Second, cliRSS, 2, "/dev/zero", "not a regular file (a character device)")
}

// A running agent that gets a runaway template refuses the commit (reason
// render-budget; /etc and the image untouched), keeps polling, and applies
// the revert pushed after it; SIGTERM then ends it at once.
func TestAgentRefusesARunawayTemplateAndAppliesItsRevert(t *testing.T) {
	run := hostile.AgentRunawayThenRevert(budgetEnv(t, "templateSteps: 200000"), hostile.NestedRange,
		5*time.Second, 60*time.Second, 30*time.Second, "")
	t.Logf("revert applied %v after %s; stopped %v %s after SIGTERM; agent peak RSS %d MB", run.Reverted, run.RevertAfter, run.Stopped, run.StopAfter, run.Exit.MaxRSS>>20)
	if !strings.Contains(run.Logs, "reason=render-budget") || !strings.Contains(run.Logs, "limits.templateSteps = 200000") {
		t.Errorf("the agent's log does not report the runaway commit as render-budget:\n%s", run.Logs)
	}
	if strings.Contains(run.EtcDuring, "runaway commit") {
		t.Errorf("/etc/motd changed to the runaway commit's: %q", run.EtcDuring)
	}
	if !run.Reverted || run.RevertAfter > 30*time.Second {
		t.Errorf("the revert was applied: %v, after %s", run.Reverted, run.RevertAfter)
	}
	if !run.Stopped || run.StopAfter > 30*time.Second {
		t.Errorf("the agent stopped %v, %s after SIGTERM (promised: within 30 s)", run.Stopped, run.StopAfter)
	}
	if run.Exit.MaxRSS > cliRSS {
		t.Errorf("agent peak RSS %d MB", run.Exit.MaxRSS>>20)
	}
	if v := verbs(run.Host.Calls()); len(v) != 0 {
		t.Errorf("bootc was asked to %q", v)
	}
}

// SIGTERM in the middle of a render that its budget would let run for
// hours (fleet.yaml and the host allow 10^15 steps) ends the agent within
// the documented 30 s, with nothing applied.
func TestSIGTERMStopsTheAgentInTheMiddleOfARender(t *testing.T) {
	run := hostile.AgentRunawayThenRevert(budgetEnv(t, "templateSteps: 1000000000000000"), hostile.NestedRange,
		3*time.Second, 0, 30*time.Second, "limits:\n  templateSteps: 1000000000000000\n")
	t.Logf("stopped %v %s after SIGTERM; agent peak RSS %d MB", run.Stopped, run.StopAfter, run.Exit.MaxRSS>>20)
	if run.Reverted {
		t.Fatal("the revert was applied: the render did not run long enough to be interrupted")
	}
	if !run.Stopped || run.StopAfter > 30*time.Second {
		t.Errorf("the agent stopped %v, %s after SIGTERM (promised: within 30 s)\n%s", run.Stopped, run.StopAfter, run.Logs)
	}
	if strings.Contains(run.EtcDuring, "runaway commit") {
		t.Errorf("/etc/motd changed to the runaway commit's: %q", run.EtcDuring)
	}
	if v := verbs(run.Host.Calls()); len(v) != 0 {
		t.Errorf("bootc was asked to %q", v)
	}
}
