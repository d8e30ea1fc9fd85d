// Package promserver runs Debian's Prometheus (package prometheus) on
// 127.0.0.1 for end-to-end tests: it scrapes the targets the test gives it
// (re-read from a file_sd file, so targets can be added while it runs)
// every scrape interval, and is stopped when the test ends.
package promserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary is Debian's Prometheus server.
const Binary = "/usr/bin/prometheus"

// Server is one running Prometheus.
type Server struct {
	t        testing.TB
	addr     string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
	mu       sync.Mutex
	targets  []string
	logs     *lockedBuffer
	Interval time.Duration
}

// Require skips the test when Prometheus is not installed, and fails it
// under CI=true (where .ci/run installs it).
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Prometheus is required under CI (Debian package prometheus): %v", err)
		}
		t.Skipf("Prometheus is not installed (apt-get install prometheus): %v", err)
	}
}

// Start runs Prometheus scraping job "bootsync" every interval.
func Start(t testing.TB, interval time.Duration) *Server {
	t.Helper()
	Require(t)
	s := &Server{t: t, dir: t.TempDir(), done: make(chan struct{}), logs: &lockedBuffer{}, Interval: interval}
	s.writeTargets()
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
scrape_configs:
  - job_name: bootsync
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, interval, interval, filepath.Join(s.dir, "targets.json"))
	if err := os.WriteFile(filepath.Join(s.dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.addr = freeAddr(t)
	s.cmd = exec.Command(Binary, "--config.file="+filepath.Join(s.dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(s.dir, "data"), "--web.listen-address="+s.addr, "--log.level=warn")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + s.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("prometheus exited at start:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after a minute:\n%s", s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// AddTargets adds host:port endpoints to scrape.
func (s *Server) AddTargets(targets ...string) {
	s.mu.Lock()
	s.targets = append(s.targets, targets...)
	s.mu.Unlock()
	s.writeTargets()
}

func (s *Server) writeTargets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, _ := json.Marshal([]map[string]any{{"targets": append([]string{}, s.targets...)}})
	tmp := filepath.Join(s.dir, "targets.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "targets.json")); err != nil {
		s.t.Fatal(err)
	}
}

// Query runs an instant query and returns the raw JSON answer's result.
func (s *Server) Query(ctx context.Context, q string) ([]json.RawMessage, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/api/v1/query?query="+url.QueryEscape(q), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, out.Error)
	}
	return out.Data.Result, nil
}

// Logs is what Prometheus printed.
func (s *Server) Logs() string { return s.logs.String() }

func (s *Server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
