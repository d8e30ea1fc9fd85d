package fleettest

import (
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Agent is `bootsync agent` running on a simulated host the way systemd
// runs it: started again at once whenever it dies, which is how a reboot
// looks here (the simulator's reboot kills the agent that asked for it,
// and the next boot starts a new one).
type Agent struct {
	h       *Host
	mu      sync.Mutex
	cmd     *exec.Cmd
	stopped bool
	starts  int
	running bool
	logs    syncBuffer
	done    chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartAgent starts the host's agent; the test's cleanup stops it.
func (h *Host) StartAgent() *Agent {
	h.T.Helper()
	a := &Agent{h: h, done: make(chan struct{})}
	go a.run()
	h.T.Cleanup(a.Stop)
	return a
}

func (a *Agent) run() {
	defer close(a.done)
	for {
		a.mu.Lock()
		if a.stopped {
			a.mu.Unlock()
			return
		}
		cmd := exec.Command(a.h.Fleet.Bootsync, "agent", "--config", a.h.Config)
		cmd.Env = a.h.Sim.Env()
		cmd.Stdout, cmd.Stderr = &a.logs, &a.logs
		err := cmd.Start()
		if err == nil {
			a.cmd, a.running = cmd, true
			a.starts++
		}
		a.mu.Unlock()
		if err != nil {
			return
		}
		err = cmd.Wait()
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return
		}
		time.Sleep(200 * time.Millisecond) // the "boot"
	}
}

// Stop stops the agent (SIGTERM) and does not start it again: the host's
// agent is down, as a crashed service or a powered-off machine looks.
func (a *Agent) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	if a.cmd != nil && a.running {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
	}
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		a.mu.Lock()
		_ = a.cmd.Process.Kill()
		a.mu.Unlock()
		<-a.done
	}
}

// Starts counts how often the agent was started (1 + the host's reboots).
func (a *Agent) Starts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.starts
}

// Logs is what the agent logged, across restarts.
func (a *Agent) Logs() string {
	return a.logs.String()
}
