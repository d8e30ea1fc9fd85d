// Package budgets measures how the real bootsync binary meets hostile and
// careless input with its default limits (issue 15): runaway templates,
// oversized files and diffs, servers that accept a connection and never
// answer, a key file that never ends, and an agent that gets a runaway
// template followed by its revert. Every case runs under a watchdog (2
// minutes, 4 GiB) so a binary without the limits can be measured too:
//
//	BOOTSYNC_BENCH_BUDGETS=1 go test -v -timeout 60m ./test/bench/budgets
//	BOOTSYNC_BENCH_BUDGETS=1 BOOTSYNC_BIN=/tmp/old/bootsync go test -v -timeout 60m ./test/bench/budgets
//
// It prints one Markdown table row per case: wall time, peak RSS and how
// the command ended. test/bench/budgets.sh runs it; docs/limits.md has the
// figures.
package budgets

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/hostile"
)

var bin string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Getenv("BOOTSYNC_BENCH_BUDGETS") == "" {
			fmt.Println("skipped: set BOOTSYNC_BENCH_BUDGETS=1 to run (takes up to an hour against a binary without limits)")
			return 0
		}
		bin = os.Getenv("BOOTSYNC_BIN")
		if bin == "" {
			dir, err := os.MkdirTemp("", "bootsync-budgets-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if bin, err = fleettest.BuildBootsync(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		defer bootcsim.Cleanup()
		return m.Run()
	}()
	os.Exit(code)
}

var rows []string

func row(name string, r hostile.Result) {
	end := fmt.Sprintf("exit %d", r.Exit)
	if r.Killed != "" {
		end = "killed at the " + r.Killed + " cap"
	}
	rows = append(rows, fmt.Sprintf("| %s | %.1f s | %d MB | %s: %s |", name, r.Wall.Seconds(), r.MaxRSS>>20, end,
		strings.ReplaceAll(hostile.ErrorLine(r.Stderr), "|", `\|`)))
}

func TestBudgets(t *testing.T) {
	env := func(t *testing.T) hostile.Env { return hostile.Env{T: t, Bin: bin} }
	t.Run("silent-range", func(t *testing.T) {
		row("`validate`, `{{range 1000000000}}{{end}}`", hostile.ValidateTemplate(env(t), hostile.SilentRange))
	})
	t.Run("nested-range", func(t *testing.T) {
		row("`validate`, three nested ranges of 100,000", hostile.ValidateTemplate(env(t), hostile.NestedRange))
	})
	t.Run("doubling", func(t *testing.T) {
		row("`validate`, a string doubled 64 times", hostile.ValidateTemplate(env(t), hostile.Doubling))
	})
	t.Run("big-template", func(t *testing.T) {
		row("`diff`, a 15 MiB template on 100 hosts", hostile.DiffBigTemplate(env(t), 100, 15<<20))
	})
	t.Run("big-file", func(t *testing.T) { row("`render -o json`, a 200 MB file", hostile.RenderBigFile(env(t), 200<<20)) })
	t.Run("big-text-diff", func(t *testing.T) { row("`diff`, a 20 MB text file changed", hostile.DiffBigText(env(t), 20<<20)) })
	t.Run("silent-git-http", func(t *testing.T) {
		r, _ := hostile.ValidateSilentGit(env(t))
		row("`validate --repo http://…`, silent Git server", r)
	})
	t.Run("silent-git-ssh", func(t *testing.T) {
		r, _, _ := hostile.AgentSilentSSH(env(t))
		row("`reconcile`, silent Git server over SSH", r)
	})
	t.Run("silent-registry", func(t *testing.T) {
		r, _ := hostile.VerifySilentRegistry(env(t))
		row("`image verify`, silent registry", r)
	})
	t.Run("silent-fleetlock", func(t *testing.T) {
		r, _, _ := hostile.AgentSilentFleetLock(env(t))
		row("`reconcile`, silent FleetLock server", r)
	})
	t.Run("key-dev-zero", func(t *testing.T) { row("`image verify --key /dev/zero`", hostile.VerifyKeyDevZero(env(t))) })
	t.Run("agent-runaway-revert", func(t *testing.T) {
		run := hostile.AgentRunawayThenRevert(env(t), hostile.NestedRange, 5*time.Second, 60*time.Second, 60*time.Second, "")
		reverted := fmt.Sprintf("revert applied after %.1f s", run.RevertAfter.Seconds())
		if !run.Reverted {
			reverted = fmt.Sprintf("revert not applied in %.0f s", run.RevertAfter.Seconds())
		}
		stopped := fmt.Sprintf("stopped %.1f s after SIGTERM", run.StopAfter.Seconds())
		if !run.Stopped {
			stopped = fmt.Sprintf("still running %.0f s after SIGTERM (killed)", run.StopAfter.Seconds())
		}
		rows = append(rows, fmt.Sprintf("| `agent`, three nested ranges, then their revert | %s; %s | %d MB | |", reverted, stopped, run.Exit.MaxRSS>>20))
	})
	t.Cleanup(func() {
		fmt.Printf("\n| case | time | peak RSS | how it ended |\n|---|---|---|---|\n%s\n", strings.Join(rows, "\n"))
	})
}
