// Package bootcsim is bootsync's bootc simulator for tests: an executable
// (./cmd/bootc) installed as `bootc` on PATH, and helpers to build it and
// set up simulated hosts.
//
// # What the executable does
//
// It speaks bootc's CLI against a JSON state file instead of an ostree
// sysroot:
//
//   - `bootc --version` prints "bootc 1.16.9" (or the simulated version).
//   - `bootc status [--format=json|yaml|humanreadable] [--format-version=0|1]
//     [--json] [--booted]` prints bootc's Host document; JSON is one line,
//     RFC 8785 canonical, without a trailing newline, with every key the
//     simulated version prints (older versions lose the keys they did not
//     have yet: readOnly < 1.16.7, usrOverlay < 1.14, downloadOnly < 1.12,
//     softRebootCapable < 1.7, ostree.stateroot < 1.3, architecture < 1.1.7).
//   - `bootc switch [--apply] [--soft-reboot=auto|required]
//     [--enforce-container-sigpolicy] [--quiet] [--transport registry]
//     [--retain] TARGET` pulls TARGET's manifest, config and layers from the
//     registry (go-containerregistry; credentials from <root>/etc/ostree/auth.json,
//     <root>/run/ostree/auth.json or <root>/usr/lib/ostree/auth.json; plain
//     HTTP only to registries in BOOTCSIM_INSECURE_REGISTRIES or marked
//     insecure in registries.conf) and stages it. Like containers/image it
//     follows <root>/etc/containers/registries.conf and its drop-ins:
//     mirrors allowed for the reference's kind first, the primary last,
//     blocked endpoints never.
//     An index resolves to the simulated architecture's manifest, whose digest
//     is reported. version/timestamp come from the org.opencontainers.image.*
//     labels. The same spec as the current one (image, transport and
//     signature compared as strings) prints "Image specification is
//     unchanged." without pulling.
//   - `bootc upgrade [--check] [--apply] [--download-only] [--from-downloaded]
//     [--soft-reboot=…] [--quiet]` follows bootc's outcomes in code order
//     (no update, staged unchanged with download-only locking/unlocking,
//     stage), and `--from-downloaded` never contacts the registry.
//   - `bootc rollback [--apply] [--soft-reboot=…]` toggles rollbackQueued
//     and discards the staged deployment.
//
// Flags newer than the simulated version are rejected as clap would (exit
// 2, "error: unexpected argument '--download-only' found"). Failures exit 1
// with "error: <context>: …" on stderr. Staging and rollback write
// <root>/run/reboot-required (bootc ≥ 1.9).
//
// `--apply` reboots the simulated host in the state file and then, like
// real bootc killed by the shutdown it started, the process dies by
// SIGKILL. With BOOTCSIM_KILL_PARENT=1 it first SIGKILLs its parent
// process (the agent that called it), since the host "went down".
//
// `bootc sim reboot --shutdown` ends like --apply (an agent's reboot
// command: the caller dies with BOOTCSIM_KILL_PARENT=1). Every hard reboot
// writes a new kernel boot ID to <root>/proc/sys/kernel/random/boot_id; a
// soft reboot keeps it.
//
// Reboots (`bootc sim reboot` or --apply) model /etc per deployment: the
// live /etc is <root>/etc. Finalizing a staged deployment carries the live
// /etc over with ostree's 3-way merge at file granularity (files the new
// image ships, as /etc or usr/etc in its layers, replace files that are not
// locally modified; a change of content, mode, owner or group is a local
// modification, and locally modified, added or deleted files win). A
// staged deployment boots before a queued rollback (staging leaves the
// rollback queued in status, as ostree's deployment order does). Booting a
// queued rollback restores the /etc saved when that deployment was last
// booted (no merge). A download-only staged deployment is discarded by a
// reboot. /run is a tmpfs: reboot-required goes away. Only regular files
// and symlinks are modelled (directory modes and empty directories are not
// kept), and the image of a host made by `sim init` ships no /etc. Where
// this model and real ostree disagreed, test/ostreehost showed it; see
// docs/ostree-host.md.
//
// Simulator verbs (real bootc has none of these): `bootc sim init`, `sim
// reboot`, `sim mark-bad DIGEST`, `sim mark-good DIGEST`, `sim health`
// (exit 1 when the booted digest is marked bad; use it as a health check
// `command: [bootc, sim, health]`), `sim calls` and `sim state`.
//
// Soft reboots: a deployment is soft-reboot capable when the host was
// initialized with --soft-reboot-target and the deployment's kernel (image
// label ostree.linux) equals the booted one's.
//
// Configuration (environment): BOOTCSIM_STATE (state file, written
// atomically; <state>.lock serializes writers like the sysroot lock),
// BOOTCSIM_ROOT (the host root; required, the simulator never touches the
// real /etc), BOOTCSIM_LOG (call log: one JSON line per invocation with
// time, argv, exit, pulled, rebooted; `sim calls` and `sim state` are not
// logged), BOOTCSIM_INSECURE_REGISTRIES (comma-separated host:port),
// BOOTCSIM_VERSION, BOOTCSIM_ARCH, BOOTCSIM_KILL_PARENT.
//
// Not simulated: transports other than registry, signature verification
// (bootsync verifies itself; only bootc's refusal of an
// insecureAcceptAnything default policy under --enforce-container-sigpolicy
// is modelled, when <root>/etc/containers/policy.json exists), `upgrade
// --tag`, `edit`, `usr-overlay`, `install`, pinned/other deployments,
// composefs, progress output, and pre-1.5 key order (output is always
// sorted; no client may depend on key order).
package bootcsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/test/bootcsim/internal/sim"
)

// Re-exported simulator types, for reading state and the call log.
type (
	State      = sim.State
	Deployment = sim.Deployment
	Boot       = sim.Boot
	Call       = sim.Call
	EtcFile    = sim.EtcFile
)

// Environment variable names.
const (
	EnvState      = sim.EnvState
	EnvRoot       = sim.EnvRoot
	EnvLog        = sim.EnvLog
	EnvInsecure   = sim.EnvInsecure
	EnvVersion    = sim.EnvVersion
	EnvArch       = sim.EnvArch
	EnvKillParent = sim.EnvKillParent
)

// DefaultVersion is the bootc version the simulator claims by default.
const DefaultVersion = sim.DefaultVersion

const pkgPath = "github.com/bootsync/bootsync/test/bootcsim/cmd/bootc"

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Build compiles the simulator once per test binary and returns the path
// of the executable, named "bootc" in a directory of its own (so the
// directory can go first on PATH). Call Cleanup from TestMain to remove it.
func Build(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "bootcsim-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "bootc")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-o", build.bin, pkgPath)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			build.err = fmt.Errorf("go build %s: %w\n%s", pkgPath, err, out.String())
		}
	})
	if build.err != nil {
		t.Fatalf("build bootc simulator: %v", build.err)
	}
	return build.bin
}

// Cleanup removes what Build compiled. Call it from TestMain after m.Run.
func Cleanup() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// Options describe a simulated host.
type Options struct {
	// Image is the booted image reference; empty makes a host that bootc
	// did not deploy (status.booted is null).
	Image string
	// Digest is the booted image's manifest digest (required with Image).
	Digest string
	// EnforceSigPolicy makes the booted deployment's spec carry
	// signature "containerPolicy".
	EnforceSigPolicy bool
	ImageVersion     string // the booted image's version label
	Kernel           string // the booted image's kernel (see soft reboots)
	SoftRebootTarget bool   // the host has soft-reboot.target
	// Version is the simulated bootc version, written to the state (the
	// environment of the returned host does not set BOOTCSIM_VERSION).
	Version string
	Arch    string // default amd64
	// InsecureRegistries are host:port reached over plain HTTP.
	InsecureRegistries []string
	// Etc is the initial live /etc: path relative to /etc → content.
	Etc map[string]string
	// KillParent sets BOOTCSIM_KILL_PARENT=1: --apply kills its caller.
	KillParent bool
}

// Host is a simulated host: a root directory, a state file and a call log.
type Host struct {
	Bin       string // the simulator executable
	BinDir    string // directory of Bin, to put first on PATH
	Root      string // the host root; Root/etc is the live /etc
	StatePath string
	LogPath   string
	simEnv    []string
}

// NewHost builds the simulator (see Build) and creates a host in a
// temporary directory removed after the test.
func NewHost(t testing.TB, opts Options) *Host {
	t.Helper()
	bin := Build(t)
	dir := t.TempDir()
	h := &Host{
		Bin:       bin,
		BinDir:    filepath.Dir(bin),
		Root:      filepath.Join(dir, "root"),
		StatePath: filepath.Join(dir, "bootcsim-state.json"),
		LogPath:   filepath.Join(dir, "bootcsim-calls.jsonl"),
	}
	h.simEnv = []string{
		EnvState + "=" + h.StatePath,
		EnvRoot + "=" + h.Root,
		EnvLog + "=" + h.LogPath,
		EnvInsecure + "=" + strings.Join(opts.InsecureRegistries, ","),
	}
	if opts.Arch != "" {
		h.simEnv = append(h.simEnv, EnvArch+"="+opts.Arch)
	}
	if opts.KillParent {
		h.simEnv = append(h.simEnv, EnvKillParent+"=1")
	}
	args := []string{"sim", "init"}
	if opts.Image != "" {
		args = append(args, "--image", opts.Image, "--digest", opts.Digest)
	}
	for flag, v := range map[string]string{"--version": opts.Version, "--image-version": opts.ImageVersion, "--kernel": opts.Kernel} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	if opts.EnforceSigPolicy {
		args = append(args, "--enforce-container-sigpolicy")
	}
	if opts.SoftRebootTarget {
		args = append(args, "--soft-reboot-target")
	}
	if r := h.Run(t, args...); r.ExitCode != 0 {
		t.Fatalf("bootc sim init: exit %d: %s", r.ExitCode, r.Stderr)
	}
	for rel, content := range opts.Etc {
		h.WriteEtc(t, rel, content)
	}
	// The initialization is setup, not a call under test.
	if err := os.Remove(h.LogPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reset bootcsim call log: %v", err)
	}
	return h
}

// SimEnv is the BOOTCSIM_* environment of this host (pass it to
// bootc.WithEnv, or add it to a child process's environment).
func (h *Host) SimEnv() []string { return append([]string(nil), h.simEnv...) }

// Env is a complete environment for a child process (for example the
// bootsync agent): this process's environment with BinDir first on PATH
// and the BOOTCSIM_* variables set.
func (h *Host) Env() []string {
	env := make([]string, 0, len(os.Environ())+len(h.simEnv)+1)
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "PATH=") || strings.HasPrefix(e, "BOOTCSIM_") {
			continue
		}
		env = append(env, e)
	}
	env = append(env, "PATH="+h.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, h.simEnv...)
}

// Driver returns an apply/bootc driver for this host.
func (h *Host) Driver(t testing.TB) *bootc.Driver {
	t.Helper()
	d, err := bootc.New(bootc.WithPath(h.Bin), bootc.WithEnv(h.SimEnv()...))
	if err != nil {
		t.Fatalf("bootc driver: %v", err)
	}
	return d
}

// RunResult is what one simulator invocation printed.
type RunResult struct {
	Stdout, Stderr string
	ExitCode       int // -1 when killed by a signal
	Killed         bool
}

// Command prepares a simulator invocation with the host's environment.
func (h *Host) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Env = h.Env()
	return cmd
}

// Run runs the simulator with args and returns its output; it fails the
// test only when the process cannot be started.
func (h *Host) Run(t testing.TB, args ...string) RunResult {
	t.Helper()
	cmd := h.Command(context.Background(), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := RunResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.ExitCode = exitErr.ExitCode()
		r.Killed = r.ExitCode == -1
	default:
		t.Fatalf("run bootc %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// MustRun runs the simulator and fails the test unless it exits 0.
func (h *Host) MustRun(t testing.TB, args ...string) RunResult {
	t.Helper()
	r := h.Run(t, args...)
	if r.ExitCode != 0 {
		t.Fatalf("bootc %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
	}
	return r
}

// Reboot simulates a reboot (bootc sim reboot).
func (h *Host) Reboot(t testing.TB) {
	t.Helper()
	h.MustRun(t, "sim", "reboot")
}

// MarkBad makes `bootc sim health` fail while digest is booted.
func (h *Host) MarkBad(t testing.TB, digest string) {
	t.Helper()
	h.MustRun(t, "sim", "mark-bad", digest)
}

// State reads the state file.
func (h *Host) State(t testing.TB) *State {
	t.Helper()
	s, err := sim.LoadState(h.StatePath)
	if err != nil {
		t.Fatalf("read bootcsim state: %v", err)
	}
	return s
}

// Status runs `bootc status --format=json --format-version=1` and parses
// it with the driver's parser.
func (h *Host) Status(t testing.TB) *bootc.Host {
	t.Helper()
	r := h.MustRun(t, "status", "--format=json", "--format-version=1")
	st, err := bootc.ParseStatus([]byte(r.Stdout))
	if err != nil {
		t.Fatalf("parse simulator status: %v\n%s", err, r.Stdout)
	}
	return st
}

// Calls reads the call log: every invocation since NewHost returned.
func (h *Host) Calls(t testing.TB) []Call {
	t.Helper()
	calls, err := sim.ReadCalls(h.LogPath)
	if err != nil {
		t.Fatalf("read bootcsim call log: %v", err)
	}
	return calls
}

// ReadEtc returns the content of /etc/<rel> on the host, and whether it
// exists.
func (h *Host) ReadEtc(t testing.TB, rel string) (string, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.Root, "etc", filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatalf("read /etc/%s: %v", rel, err)
	}
	return string(data), true
}

// WriteEtc writes /etc/<rel> on the host (as a local edit would).
func (h *Host) WriteEtc(t testing.TB, rel, content string) {
	t.Helper()
	p := filepath.Join(h.Root, "etc", filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("write /etc/%s: %v", rel, err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatalf("write /etc/%s: %v", rel, err)
	}
}

// WriteRootFile writes a file anywhere under the host root (for example
// etc/ostree/auth.json or etc/containers/policy.json).
func (h *Host) WriteRootFile(t testing.TB, rel string, data []byte, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(h.Root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("write %s: %v", rel, err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatalf("write %s: %v", rel, err)
	}
}
