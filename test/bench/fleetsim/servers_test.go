package fleetsim

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/gitserver"
)

// serverCPU is the core the servers are pinned to (taskset -c), from
// $FLEETSIM_SERVER_CPU; "" runs them unpinned.
func serverCPU() string {
	if v, ok := os.LookupEnv("FLEETSIM_SERVER_CPU"); ok {
		return v
	}
	return "0"
}

// pinned is argv run on the server core: taskset -c CPU argv….
func pinned(argv ...string) []string {
	if cpu := serverCPU(); cpu != "" {
		return append([]string{"/usr/bin/taskset", "-c", cpu}, argv...)
	}
	return argv
}

// countingListener counts the bytes the server writes (what it serves,
// headers included) on every connection it accepts.
type countingListener struct {
	net.Listener
	written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, written: l.written}, nil
}

type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// gitHTTP is git http-backend as a deployment runs it: a CGI process per
// request (Debian's git package), on the server core, with no connection
// kept alive between polls (a host polls every few minutes). The CGI
// front end is this process's net/http: its CPU is not counted, which
// favours Git (Apache or nginx + fcgiwrap would add theirs).
type gitHTTP struct {
	root   string
	addr   string
	served atomic.Int64
}

func startGit(t testing.TB) *gitHTTP {
	t.Helper()
	g := &gitHTTP{root: t.TempDir()}
	argv := pinned(gitserver.HTTPBackend)
	h := &cgi.Handler{
		Path: argv[0], Args: argv[1:], Root: "/", InheritEnv: []string{"PATH"},
		Logger: log.New(io.Discard, "", 0), // clients that gave up (counted as failed polls)
		Env:    []string{"GIT_PROJECT_ROOT=" + g.root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for git http-backend: %v", err)
	}
	g.addr = ln.Addr().String()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(countingListener{Listener: ln, written: &g.served}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return g
}

func (g *gitHTTP) url(repo string) string { return "http://" + g.addr + "/" + repo }

// cpu is the CPU time of git http-backend: this process's waited-for
// children (the CGI processes; setup's git commands are outside the
// windows measured).
func (g *gitHTTP) cpu(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// registryConfig is a docker-registry configuration: the one a deployment
// would run (filesystem storage, in-memory blob descriptor cache, auth
// and TLS at the front, log level as given, access log as given).
type registryConfig struct {
	name      string
	logLevel  string
	accessLog bool
	debugAddr string // http.debug.addr: pprof, for TestProfileRegistry
}

var (
	// testConfig is test/registryserver's: info, access log off.
	testConfig = registryConfig{name: "info, no access log", logLevel: "info"}
	// productionConfig is a production registry's usual logging: warn,
	// with the access log a registry operator keeps.
	productionConfig = registryConfig{name: "warn, access log", logLevel: "warn", accessLog: true}
	// quietConfig logs warnings only and no access log (logs at the CDN).
	quietConfig = registryConfig{name: "warn, no access log", logLevel: "warn"}
)

// dockerRegistry is Debian's docker-registry on the server core, clients
// talking to it directly (no proxy in between).
type dockerRegistry struct {
	addr string
	cmd  *exec.Cmd
}

func startRegistry(t testing.TB, cfg registryConfig) *dockerRegistry {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a port for docker-registry: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: %s\n  accesslog:\n    disabled: %t\nstorage:\n  filesystem:\n    rootdirectory: %s\n"+
		"  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: %s\n  secret: fleetsim\n", cfg.logLevel, !cfg.accessLog, filepath.Join(dir, "storage"), addr)
	if cfg.debugAddr != "" {
		conf += "  debug:\n    addr: " + cfg.debugAddr + "\n"
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("write registry config: %v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatalf("create registry log: %v", err)
	}
	argv := pinned("/usr/bin/docker-registry", "serve", cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("run docker-registry: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v", addr, err)
		}
	}
	return &dockerRegistry{addr: addr, cmd: cmd}
}

// cpu is the registry process's CPU time (taskset execs it in place).
func (r *dockerRegistry) cpu(t testing.TB) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read registry CPU: %v", err)
	}
	f := strings.Fields(string(stat)[strings.LastIndex(string(stat), ")")+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// countingDialer counts the bytes clients read from the registry (what it
// serves, headers included).
func countingTransport(read *atomic.Int64) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second}
	return &http.Transport{
		DisableKeepAlives:     true, // a host polls every few minutes: a new connection each time
		ResponseHeaderTimeout: 30 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return readCountingConn{Conn: c, read: read}, nil
		},
	}
}

type readCountingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c readCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}
