package hostile

import (
	"fmt"
	"github.com/bootsync/bootsync/test/silent"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/gitserver"
)

// agentNetworkConfig is the host configuration for e.NetTimeout.
func (e Env) agentNetworkConfig() string {
	if e.NetTimeout == "" {
		return ""
	}
	return "network:\n  timeout: " + e.NetTimeout + "\n"
}

// hostRun runs bootsync on a simulated host, measured.
func (e Env) hostRun(h *fleettest.Host, args ...string) Result {
	e.T.Helper()
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = h.Sim.Env()
	caps := e.Caps
	if caps == (Caps{}) {
		caps = DefaultCaps
	}
	res, err := Run(cmd, caps)
	if err != nil {
		e.T.Fatal(err)
	}
	return res
}

// AgentSilentSSH runs one `bootsync reconcile` on a host whose fleet
// repository is an ssh:// URL of a server that accepts and never answers
// (not even the SSH version line).
func AgentSilentSSH(e Env) (Result, *fleettest.Host, *silent.Server) {
	e.T.Helper()
	f := fleettest.New(e.T, e.Bin)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	s := silent.New(e.T)
	h := f.NewHost("web-01", v1, fleettest.HostOptions{ExtraConfig: e.agentNetworkConfig()})
	key, _ := gitserver.NewClientKey(e.T, e.T.TempDir())
	cfg, err := os.ReadFile(h.Config)
	if err != nil {
		e.T.Fatal(err)
	}
	text := strings.Replace(string(cfg), "url: "+f.URL, "url: ssh://git@"+s.Addr()+"/fleet.git", 1)
	text = strings.Replace(text, "  allowHTTP: true", "  auth:\n    sshKeyFile: "+key+"\n    insecureIgnoreHostKey: true", 1)
	if err := os.WriteFile(h.Config, []byte(text), 0o644); err != nil {
		e.T.Fatal(err)
	}
	return e.hostRun(h, "reconcile", "--config", h.Config), h, s
}

// AgentSilentFleetLock stages an update on a host whose update policy is
// reboot: fleetlock with a FleetLock server that accepts and never
// answers, and runs the pass that asks it for a reboot slot.
func AgentSilentFleetLock(e Env) (Result, *fleettest.Host, string) {
	e.T.Helper()
	f := fleettest.New(e.T, e.Bin)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	s := silent.New(e.T)
	policy := "reboot: fleetlock\nfleetlock: {url: \"http://" + s.Addr() + "\"}"
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, policy)})
	h := f.NewHost("web-01", v1, fleettest.HostOptions{ExtraConfig: e.agentNetworkConfig()})
	h.Sim.WriteRootFile(e.T, "etc/machine-id", []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	h.MustPass()
	f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, policy)})
	return e.hostRun(h, "reconcile", "--config", h.Config), h, v1
}

// AgentRun is how a running agent met a runaway template and its revert.
type AgentRun struct {
	Host        *fleettest.Host
	Good        string        // the last good commit before the runaway one
	Runaway     string        // the commit with the runaway template
	Revert      string        // its revert
	RevertAfter time.Duration // from pushing the revert until the agent applied it
	Reverted    bool
	EtcDuring   string        // /etc/motd while the runaway commit was the newest
	StopAfter   time.Duration // from SIGTERM until the agent exited
	Stopped     bool          // exited on its own after SIGTERM (not killed)
	Exit        Result        // the agent process, measured
	Logs        string
}

// AgentRunawayThenRevert runs `bootsync agent` (interval 1s), pushes a
// commit that adds tmpl as a template and changes /etc/motd, waits,
// pushes its revert and waits for the agent to apply that (up to revertCap),
// then sends SIGTERM (terminateAfter the revert was applied or given up on)
// and waits up to stopCap for the agent to exit. hostConfig is added to the
// agent's configuration.
func AgentRunawayThenRevert(e Env, tmpl string, runawayFor, revertCap, stopCap time.Duration, hostConfig string) AgentRun {
	e.T.Helper()
	f := fleettest.New(e.T, e.Bin)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	base := f.FleetYAML(v1, "")
	if e.Limits != "" {
		base += "limits:\n"
		for _, l := range strings.Split(strings.TrimSpace(e.Limits), "\n") {
			base += "  " + strings.TrimSpace(l) + "\n"
		}
	}
	run := AgentRun{Good: f.Commit("v1", map[string]string{"fleet.yaml": base})}
	h := f.NewHost("web-01", v1, fleettest.HostOptions{ExtraConfig: e.agentNetworkConfig() + hostConfig})
	run.Host = h

	cmd := exec.Command(e.Bin, "agent", "--config", h.Config)
	cmd.Env = h.Sim.Env()
	var logs lockedBuilder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	caps := e.Caps
	if caps == (Caps{}) {
		caps = DefaultCaps
	}
	caps.Wall = 0 // the phases below have their own caps
	proc, err := Start(cmd, caps)
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(proc.Kill)
	done := make(chan Result, 1)
	go func() {
		res, err := proc.Wait()
		if err != nil {
			res.Stderr = err.Error()
		}
		done <- res
	}()
	if !waitUntil(60*time.Second, func() bool { return applied(h, run.Good) }) {
		e.T.Fatalf("the agent did not apply the first commit:\n%s", logs.String())
	}

	runaway := strings.Replace(base, "  etc:\n", "  etc:\n    - path: /etc/runaway.conf\n      content: "+quote(tmpl)+"\n      template: true\n", 1)
	runaway = strings.Replace(runaway, "is managed by bootsync", "is managed by a runaway commit", 1)
	run.Runaway = f.Commit("runaway", map[string]string{"fleet.yaml": runaway})
	time.Sleep(runawayFor)
	run.EtcDuring, _ = h.Etc("motd")

	run.Revert = f.Repo.Revert("HEAD")
	f.Repo.Push()
	pushed := time.Now()
	run.Reverted = waitUntil(revertCap, func() bool { return applied(h, run.Revert) })
	run.RevertAfter = time.Since(pushed)

	stop := time.Now()
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case run.Exit = <-done:
		run.Stopped = true
	case <-time.After(stopCap):
		proc.Kill()
		run.Exit = <-done
	}
	run.StopAfter = time.Since(stop)
	run.Logs = logs.String()
	return run
}

// applied reports whether the host's journal records commit as applied.
func applied(h *fleettest.Host, commit string) bool {
	j, err := reconcile.NewJournalStore(h.StateDir).Load()
	return err == nil && j.LastApplied == commit
}

func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
