package e2e

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/bootcsim"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `bootsync agent`: a pass at start, another at once on SIGHUP, metrics on
// the configured address, and a clean stop on SIGTERM.
func TestAgentLoopSignalsAndMetrics(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	addr := freeAddr(t)
	h := f.NewHost("web-01", v1, hostOptions{Metrics: addr, Interval: "1h"})

	cmd := exec.Command(bootsyncBin, "agent", "--config", h.Config)
	cmd.Env = h.Sim.Env()
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	// The first pass runs at start, without waiting for the interval.
	waitFor(t, "the first pass", func() bool { got, _ := h.Etc("motd"); return got != "" })

	// A change in Git is picked up at once on SIGHUP (the interval is 1h).
	f.Commit("motd", map[string]string{"fleet.yaml": strings.Replace(f.FleetYAML(v1, ""), "is managed", "is run", 1)})
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pass after SIGHUP", func() bool { got, _ := h.Etc("motd"); return strings.Contains(got, "is run by") })

	// /etc is written during the pass; its metrics come when it ends.
	var body []byte
	waitFor(t, "the second pass in the metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return strings.Contains(string(body), "bootsync_pass_duration_seconds_count 2")
	})
	for _, want := range []string{
		`bootsync_desired_image_info{commit=`,
		`digest="` + digestOf(v1) + `"`,
		`",digest="` + digestOf(v1) + `"} 1`,
		"bootsync_last_success_timestamp_seconds ",
		"bootsync_pass_duration_seconds_count 2",
		"bootsync_reboot_pending 0",
		"bootsync_drift_files 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	for _, want := range []string{"agent started", "pass done", "pass requested (SIGHUP)", "agent stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
