// Package gitserver runs real Git servers on 127.0.0.1 for tests: smart HTTP
// through Debian's git-http-backend behind net/http/cgi (server.go), and SSH
// through gliderlabs/ssh running the real git-upload-pack (ssh.go). Every
// server counts the requests it receives, so tests can assert how much a
// client talked to it, and every server is stopped by t.Cleanup.
//
// Repositories are made with the real git CLI; see package gittest.
package gitserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HTTPBackend is the CGI program that serves smart HTTP, from Debian's git package.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// Request is one HTTP request the server received.
type Request struct {
	Method string
	Path   string // URL path, e.g. /fleet.git/info/refs
	Query  string // raw query, e.g. service=git-upload-pack
	Status int    // status code the server answered with
}

// String renders the request as "GET /fleet.git/info/refs?service=git-upload-pack 200".
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s + " " + strconv.Itoa(r.Status)
}

// Server serves every bare repository under Root over smart HTTP.
type Server struct {
	t      testing.TB
	root   string
	user   string
	pass   string
	config [][2]string
	cgi    *cgi.Handler
	tlsOn  bool
	caPEM  []byte
	cert   tls.Certificate

	mu       sync.Mutex
	stderr   bytes.Buffer // what git-http-backend wrote to stderr
	addr     string       // fixed at the first start, reused by Start
	srv      *http.Server
	done     chan struct{}
	requests []Request
}

// Option configures a Server.
type Option func(*Server)

// WithRoot serves the repositories under dir instead of a fresh temporary directory.
func WithRoot(dir string) Option { return func(s *Server) { s.root = dir } }

// WithBasicAuth requires HTTP basic authentication with exactly this user
// and password. Requests without valid credentials get 401 Unauthorized, as
// GitHub and Gitea answer.
func WithBasicAuth(user, password string) Option {
	return func(s *Server) { s.user, s.pass = user, password }
}

// WithGitConfig sets a git configuration value for the backend, e.g.
// ("uploadpack.allowReachableSHA1InWant", "true") or ("http.receivepack", "true").
func WithGitConfig(key, value string) Option {
	return func(s *Server) { s.config = append(s.config, [2]string{key, value}) }
}

// New starts a server on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if _, err := os.Stat(HTTPBackend); err != nil {
		t.Fatalf("git-http-backend is required (Debian package git): %v", err)
	}
	s := &Server{t: t}
	for _, o := range opts {
		o(s)
	}
	if s.root == "" {
		s.root = t.TempDir()
	}
	s.cgi = backend(s.root, s.config, lockedWriter{s})
	if s.tlsOn {
		s.caPEM, s.cert = newTestCA(t, "bootsync test git CA")
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start git server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Handler serves every bare repository under root over smart HTTP, pushes
// included, for programs that are not tests (the demo); tests use New,
// which also counts requests and stops with the test.
func Handler(root string) http.Handler {
	return backend(root, [][2]string{{"http.receivepack", "true"}}, os.Stderr)
}

// backend is git http-backend as a CGI handler exporting the repositories
// under root, with a hermetic git configuration plus config.
func backend(root string, config [][2]string, stderr io.Writer) *cgi.Handler {
	env := []string{
		"GIT_PROJECT_ROOT=" + root,
		"GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_COUNT=" + strconv.Itoa(len(config)),
	}
	for i, kv := range config {
		env = append(env,
			fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]),
			fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return &cgi.Handler{
		Path:       HTTPBackend,
		Root:       "/",
		Env:        env,
		InheritEnv: []string{"PATH"},
		Stderr:     stderr,
	}
}

// Root is the directory that holds the served bare repositories.
func (s *Server) Root() string { return s.root }

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URL returns the http:// (https:// with WithTLS) URL of the repository at
// path (relative to Root), e.g. URL("fleet.git").
func (s *Server) URL(repo string) string {
	scheme := "http://"
	if s.tlsOn {
		scheme = "https://"
	}
	return scheme + s.Addr() + "/" + strings.TrimPrefix(repo, "/")
}

// URLWithPassword returns URL(repo) with the given credentials embedded as
// userinfo, for tests of credential redaction.
func (s *Server) URLWithPassword(repo, user, password string) string {
	return "http://" + user + ":" + password + "@" + s.Addr() + "/" + strings.TrimPrefix(repo, "/")
}

// Start (re)starts serving. The first start picks a free port on 127.0.0.1;
// later starts listen on the same port again, so clients configured with
// URL() reach the server again after Stop.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("git server is already running")
	}
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	// The old socket may linger briefly after Stop; retry for a moment.
	for i := 0; i < 50; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.addr = ln.Addr().String()
	if s.tlsOn {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12})
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 30 * time.Second}
	s.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on Stop
	}(s.srv, s.done)
	return nil
}

// Stop closes the listener and every open connection, as a crashed or
// unreachable server would look to clients. Start serves again.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv, s.done = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-done
}

// Requests returns every request received since the start or the last Reset.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count is len(Requests()).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// CountPath counts the requests whose path starts with prefix, e.g.
// CountPath("/fleet.git/").
func (s *Server) CountPath(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

// Reset forgets the requests received so far.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// InitBare creates an empty bare repository at Root/name with the real git
// CLI and returns its path. Its default branch is main.
func (s *Server) InitBare(name string) string {
	s.t.Helper()
	return InitBare(s.t, filepath.Join(s.root, name))
}

// InitBare creates an empty bare repository at dir with the real git CLI.
func InitBare(t testing.TB, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "init", "-q", "--bare", "-b", "main", dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init --bare %s: %v\n%s", dir, err, out)
	}
	return dir
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status})
		s.mu.Unlock()
	}()
	if s.user != "" || s.pass != "" {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) != 1 {
			rec.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(rec, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	s.cgi.ServeHTTP(rec, r)
}

// Stderr returns what git-http-backend wrote to its standard error so far.
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}
