package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
)

// The fleet repository cannot loosen the host's trust in two steps:
// commit 1 rewrites the host's config.yaml to need no signatures (with the
// image unchanged, so it would apply), commit 2 points the host at an
// unsigned image. Before, the agent wrote the new configuration and, once
// restarted, switched to the unsigned image. Now the first commit is
// refused whole (reason reserved-path; nothing written), and so is every
// commit that still carries the entry; without it, the unsigned image is
// refused by the host's unchanged trust.
func TestFleetCannotLoosenHostTrust(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	unsigned := f.Image("unsigned", bootcsim.ImageOptions{}, false)
	h := f.NewHost("web-01", v1, hostOptions{})
	// The agent reads its configuration from the host's /etc, as on a
	// real host.
	cfg, err := os.ReadFile(h.Config)
	if err != nil {
		t.Fatal(err)
	}
	h.Config = filepath.Join(h.Sim.Root, "etc/bootsync/config.yaml")
	if err := os.MkdirAll(filepath.Dir(h.Config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	// A set-user-ID file is written, with a warning in status and plan.
	suid := "    - {path: /etc/helper, content: \"#!/bin/sh\\n\", mode: \"4755\"}\n"
	withSuid := strings.Replace(f.FleetYAML(v1, ""), "  etc:\n", "  etc:\n"+suid, 1)
	f.Commit("v1", map[string]string{"fleet.yaml": withSuid})
	h.MustPass()
	if st := h.Status(); !strings.Contains(strings.Join(st.Warnings, "\n"), "/etc/helper (fleet.yaml:6): mode 4755 sets the set-user-ID bit(s)") {
		t.Fatalf("status warnings %q lack the set-user-ID warning", st.Warnings)
	}
	if r := h.Run(nil, "plan", "--config", h.Config); !strings.Contains(r.Stdout, "warning: /etc/helper") {
		t.Fatalf("plan does not warn about the set-user-ID file: %s", r)
	}

	loosened := strings.NewReplacer("requireSignatures: true", "requireSignatures: false", "signingKeys: ["+f.KeyFile+"]", "signingKeys: []").Replace(string(cfg))
	entry := "    - path: /etc/bootsync/config.yaml\n      content: |\n" + indent(loosened, "        ")
	noFleetPolicy := func(yaml string) string { return strings.Replace(yaml, "policy:\n  requireSignatures: true\n", "", 1) }
	commits := []struct {
		msg, yaml, reason string
	}{
		{"loosen the host's trust", noFleetPolicy(strings.Replace(withSuid, "  etc:\n", "  etc:\n"+entry, 1)), "reserved-path"},
		{"and use an unsigned image", noFleetPolicy(strings.Replace(f.FleetYAML(unsigned, ""), "  etc:\n", "  etc:\n"+entry, 1)), "reserved-path"},
		{"only the unsigned image", noFleetPolicy(f.FleetYAML(unsigned, "")), "no-signature"},
	}
	for _, c := range commits {
		before := len(h.Calls())
		f.Commit(c.msg, map[string]string{"fleet.yaml": c.yaml})
		r := h.Pass()
		if r.Exit == 0 || r.Killed {
			t.Fatalf("%s: the pass was accepted: %s", c.msg, r)
		}
		st := h.Status()
		if st.LastError == nil || string(st.LastError.Reason) != c.reason {
			t.Fatalf("%s: last error %+v, want reason %s", c.msg, st.LastError, c.reason)
		}
		if c.reason == "reserved-path" && !strings.Contains(st.LastError.Message, "/etc/bootsync/config.yaml (fleet.yaml:") {
			t.Fatalf("%s: the error does not name the entry: %s", c.msg, st.LastError.Message)
		}
		if got, _ := os.ReadFile(h.Config); !bytes.Equal(got, cfg) {
			t.Fatalf("%s: the host's configuration changed:\n%s", c.msg, got)
		}
		if got := verbs(h.Calls()[before:]); len(got) != 0 || h.Booted() != digestOf(v1) {
			t.Fatalf("%s: the host changed: bootc calls %q, booted %s", c.msg, got, h.Booted())
		}
	}
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	return prefix + strings.Join(lines, prefix) + "\n"
}

// agentProcess is a running `bootsync agent` whose log is collected.
type agentProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func (a *agentProcess) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.Write(p)
}

func (a *agentProcess) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// signal sends the agent sig.
func (a *agentProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// startAgent starts `bootsync agent` on h; env goes after the host's own
// environment (a later entry wins).
func startAgent(t *testing.T, h *fleettest.Host, env ...string) *agentProcess {
	t.Helper()
	a := &agentProcess{cmd: exec.Command(bootsyncBin, "agent", "--config", h.Config), done: make(chan error, 1)}
	a.cmd.Env = append(h.Sim.Env(), env...)
	a.cmd.Stderr = a
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			<-a.done
		}
	})
	return a
}

// metric returns the value of one sample of the agent's metrics (-1 when
// absent).
func metric(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(sample) + " (\\S+)$").FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// After `bootc rollback` to an older image, the older agent meets a
// journal written by a newer one. Before, `bootsync agent` logged only
// "agent started", counted nothing and status still showed the last pass
// as ok. Now every pass says why it does nothing — in the log, as
// bootsync_errors_total{reason="state"} and in `bootsync status` — while
// the journal stays as the newer agent wrote it and the loop keeps going:
// also with a truncated journal, when status.json cannot be written and
// when the state lock cannot be taken; a lock held by another pass is
// waited for, saying so; once the state is readable again the host
// converges.
func TestAgentWithUnreadableStateSaysSoAndKeepsRunning(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	addr := freeAddr(t)
	h := f.NewHost("web-01", v1, hostOptions{Metrics: addr, Interval: "1h"})
	journal := filepath.Join(h.StateDir, "journal.json")
	newer := []byte(`{"version": 2, "lastApplied": "0000000000000000000000000000000000000000", "fromTheFuture": {"x": 1}}` + "\n")
	writeStateFile(t, journal, string(newer), 0o600)
	// An earlier, successful pass of this agent left its status.
	writeStateFile(t, filepath.Join(h.StateDir, "status.json"), `{"host": "web-01", "updated": "2025-01-01T00:00:00Z", "lastPass": {"started": "2025-01-01T00:00:00Z", "duration": "1s", "result": "ok", "state": "converged", "reason": "", "steps": []}, "managed": [], "drift": [], "quarantine": []}`, 0o644)

	a := startAgent(t, h)
	const stateErrors = `bootsync_errors_total{reason="state"}`
	waitFor(t, "a state error in the metrics", func() bool { return metric(t, addr, stateErrors) == 1 })
	if !strings.Contains(a.log(), "written by a newer agent (journal version 2") || !strings.Contains(a.log(), "reason=state") {
		t.Fatalf("the log does not say why the pass failed:\n%s", a.log())
	}
	r := h.Run(nil, "status", "--config", h.Config)
	for _, want := range []string{"error in", "[state]", "written by a newer agent (journal version 2"} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("status lacks %q:\n%s", want, r)
		}
	}
	if got, _ := os.ReadFile(journal); !bytes.Equal(got, newer) {
		t.Fatalf("the newer agent's journal changed:\n%s", got)
	}
	if got, ok := h.Etc("motd"); ok || len(verbs(h.Calls())) != 0 {
		t.Fatalf("the host changed although the state was unreadable: motd %q, bootc calls %q", got, verbs(h.Calls()))
	}

	// The loop goes on; a truncated journal and an unwritable status.json
	// (a read-only /var) are errors in the log and the metric too.
	writeStateFile(t, journal, `{"version": 1, "lastAppl`, 0o600)
	status := filepath.Join(h.StateDir, "status.json")
	replaceWithDir(t, status, 0o755)
	a.signal(t, syscall.SIGHUP)
	// One for the pass, one for the status it could not write.
	waitFor(t, "two more state errors", func() bool { return metric(t, addr, stateErrors) == 3 })
	if !strings.Contains(a.log(), "truncated or corrupt") || !strings.Contains(a.log(), "write status") {
		t.Fatalf("the log does not show the corrupt journal and the failed status write:\n%s", a.log())
	}

	// A state lock that cannot be taken at all (here: agent.lock is a
	// directory) is the same kind of error.
	lockFile := filepath.Join(h.StateDir, "agent.lock")
	replaceWithDir(t, lockFile, 0o700)
	a.signal(t, syscall.SIGHUP)
	waitFor(t, "a lock failure in the metrics", func() bool { return metric(t, addr, stateErrors) == 5 })
	if !strings.Contains(a.log(), "lock state: open") {
		t.Fatalf("the log does not show the lock failure:\n%s", a.log())
	}

	// Readable state again, but another pass (a `bootsync reconcile`)
	// holds the lock: the agent says it waits, and converges once the
	// lock is free.
	for _, p := range []string{journal, status, lockFile} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := reconcile.LockStateDir(t.Context(), h.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	a.signal(t, syscall.SIGHUP)
	waitFor(t, "the agent to say it waits for the lock", func() bool { return strings.Contains(a.log(), "waiting for the state lock") })
	unlock()
	waitFor(t, "the pass after the state was repaired", func() bool { got, _ := h.Etc("motd"); return got != "" })
	a.signal(t, syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("agent exited with %v:\n%s", err, a.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
}

// writeStateFile writes a file of the agent's state directory, creating
// the directory as the agent would.
func writeStateFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// replaceWithDir puts a directory where the file path was: a file the
// agent can neither read nor write as a file.
func replaceWithDir(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, perm); err != nil {
		t.Fatal(err)
	}
}
