// Package registryserver runs the real CNCF distribution registry (Debian's
// docker-registry) on 127.0.0.1 for end-to-end tests, behind a reverse proxy
// that counts every request, so tests can assert how much a client talked
// to the registry. Down and Up simulate an outage (connections refused)
// while the registry keeps its content. Every server is stopped by
// t.Cleanup.
package registryserver

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultBinary is Debian's distribution registry (package docker-registry).
const DefaultBinary = "/usr/bin/docker-registry"

// Request is one HTTP request the registry received.
type Request struct {
	Method string
	Path   string // URL path, e.g. /v2/os/base/manifests/stable
	Status int
}

// String renders the request as "HEAD /v2/os/base/manifests/stable 200".
func (r Request) String() string { return r.Method + " " + r.Path + " " + strconv.Itoa(r.Status) }

// Server is a running registry and its counting proxy.
type Server struct {
	t       testing.TB
	binary  string
	dir     string
	backend string // the registry's own 127.0.0.1:port
	cmd     *exec.Cmd
	exited  chan struct{}

	mu       sync.Mutex
	addr     string // the proxy's 127.0.0.1:port, what clients use; fixed at start
	srv      *http.Server
	served   chan struct{}
	requests []Request
}

// Option configures a Server.
type Option func(*Server)

// WithBinary runs another registry binary. The default is $BOOTSYNC_DOCKER_REGISTRY
// or DefaultBinary.
func WithBinary(path string) Option { return func(s *Server) { s.binary = path } }

// WithDir keeps configuration, storage and the registry log under dir
// instead of a fresh temporary directory.
func WithDir(dir string) Option { return func(s *Server) { s.dir = dir } }

// New starts a registry on 127.0.0.1 and stops it when the test ends. A
// missing registry binary fails the test: CI installs it (see .ci/run).
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, binary: os.Getenv("BOOTSYNC_DOCKER_REGISTRY")}
	for _, o := range opts {
		o(s)
	}
	if s.binary == "" {
		s.binary = DefaultBinary
	}
	if _, err := os.Stat(s.binary); err != nil {
		t.Fatalf("the distribution registry is required (Debian package docker-registry): %v", err)
	}
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	t.Cleanup(s.Stop)
	if err := s.startBackend(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	if err := s.Up(); err != nil {
		t.Fatalf("start registry proxy: %v", err)
	}
	return s
}

// Addr is host:port of the registry as clients reach it ("127.0.0.1:NNNN").
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// LogPath is the registry's own log file.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "registry.log") }

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) startBackend() error {
	var lastErr error
	// The port is chosen by probing, so another process may take it before
	// the registry binds it: try a few ports.
	for range 5 {
		addr, err := freePort()
		if err != nil {
			return err
		}
		if lastErr = s.tryBackend(addr); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

func (s *Server) tryBackend(addr string) error {
	storage := filepath.Join(s.dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return err
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: %s
  secret: bootsync-test-secret
`, storage, addr)
	cfgPath := filepath.Join(s.dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.binary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return fmt.Errorf("registry exited during start-up; log:\n%s", tail(s.LogPath()))
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.cmd, s.exited, s.backend = cmd, exited, addr
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("registry did not answer /v2/ on %s within 20s; log:\n%s", addr, tail(s.LogPath()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// handler forwards to the registry and records each request.
func (s *Server) handler() http.Handler {
	target := &url.URL{Scheme: "http", Host: s.backend}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(rec, r)
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Status: rec.status})
		s.mu.Unlock()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Up starts (or restarts after Down) the proxy on the same address.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	for range 50 { // the old socket may linger briefly after Down
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.addr = l.Addr().String()
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan struct{})
	go func() { _ = srv.Serve(l); close(served) }()
	s.srv, s.served = srv, served
	return nil
}

// Down stops accepting connections (clients get "connection refused") and
// closes open ones, until Up. The registry keeps its content.
func (s *Server) Down() {
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-served
}

// Requests returns the requests received since the start or the last Reset.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many received requests have method (any when empty)
// and a path with the given prefix.
func (s *Server) Count(method, pathPrefix string) int {
	n := 0
	for _, r := range s.Requests() {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Stop shuts the proxy and the registry down. It is idempotent.
func (s *Server) Stop() {
	s.Down()
	if s.cmd == nil {
		return
	}
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}
