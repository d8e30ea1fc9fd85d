package hostile

import (
	"github.com/bootsync/bootsync/test/silent"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/signer"
)

// Env is how a case runs: the bootsync binary, the limits written into
// fleet.yaml (empty: the defaults; a binary from before limits existed only
// takes empty), the network timeout flag (empty: none) and the watchdog.
type Env struct {
	T          testing.TB
	Bin        string
	Limits     string
	NetTimeout string // --network-timeout value for commands that talk to a server
	Caps       Caps
}

// DefaultCaps stop a runaway after two minutes or 4 GiB.
var DefaultCaps = Caps{Wall: 2 * time.Minute, RSS: 4 << 30}

func (e Env) run(dir string, args ...string) Result {
	e.T.Helper()
	cmd := exec.Command(e.Bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+e.T.TempDir(), "XDG_CACHE_HOME="+e.T.TempDir())
	caps := e.Caps
	if caps == (Caps{}) {
		caps = DefaultCaps
	}
	res, err := Run(cmd, caps)
	if err != nil {
		e.T.Fatalf("run %s %v: %v", e.Bin, args, err)
	}
	return res
}

func (e Env) netArgs() []string {
	if e.NetTimeout == "" {
		return nil
	}
	return []string{"--network-timeout", e.NetTimeout}
}

// ValidateTemplate runs `bootsync validate` on a fleet whose host renders tmpl.
func ValidateTemplate(e Env, tmpl string) Result {
	e.T.Helper()
	r := TemplateFleet(e.T, e.Limits, tmpl)
	return e.run(r.Dir, "validate", "--repo", r.Dir)
}

// DiffBigTemplate runs `bootsync diff` between a commit where 100 hosts
// render a one-line template and one where it is size bytes.
func DiffBigTemplate(e Env, hosts int, size int64) Result {
	e.T.Helper()
	r := BigTemplateFleet(e.T, e.Limits, hosts, size)
	return e.run(r.Dir, "diff", "--repo", r.Dir, "--base", "HEAD~1", "--head", "HEAD", "-o", "json")
}

// RenderBigFile runs `bootsync render -o json` for a host that gets a file
// of size bytes.
func RenderBigFile(e Env, size int64) Result {
	e.T.Helper()
	dir := BigFileFleet(e.T, e.Limits, size)
	return e.run(dir, "render", "web-001", "--repo", dir, "-o", "json")
}

// DiffBigText runs `bootsync diff` over a text file of size bytes of
// which one line in a hundred changed.
func DiffBigText(e Env, size int64) Result {
	e.T.Helper()
	r := TextDiffFleet(e.T, e.Limits, size)
	return e.run(r.Dir, "diff", "--repo", r.Dir, "--base", "HEAD~1", "--head", "HEAD", "-o", "json")
}

// ValidateSilentGit runs `bootsync validate --repo http://…` against a
// server that accepts the connection and never answers.
func ValidateSilentGit(e Env) (Result, *silent.Server) {
	e.T.Helper()
	s := silent.New(e.T)
	args := append([]string{"validate", "--repo", "http://" + s.Addr() + "/fleet.git", "--allow-http", "--cache-dir", e.T.TempDir()}, e.netArgs()...)
	return e.run(e.T.TempDir(), args...), s
}

// VerifySilentRegistry runs `bootsync image verify` against a registry
// that accepts the connection and never answers.
func VerifySilentRegistry(e Env) (Result, *silent.Server) {
	e.T.Helper()
	s := silent.New(e.T)
	key := writeKey(e.T)
	args := append([]string{"image", "verify", s.Addr() + "/os/base:v1", "--insecure-registry", s.Addr(),
		"--key", key, "--config", emptyConfig(e.T)}, e.netArgs()...)
	return e.run(e.T.TempDir(), args...), s
}

// VerifyKeyDevZero runs `bootsync image verify --key /dev/zero`.
func VerifyKeyDevZero(e Env) Result {
	e.T.Helper()
	s := silent.New(e.T) // never reached: the key is refused first
	return e.run(e.T.TempDir(), "image", "verify", s.Addr()+"/os/base:v1", "--insecure-registry", s.Addr(),
		"--key", "/dev/zero", "--config", emptyConfig(e.T))
}

func writeKey(t testing.TB) string {
	t.Helper()
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "fleet.pub")
	if err := s.WritePublicKey(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func emptyConfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("host:\n  name: ci\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
