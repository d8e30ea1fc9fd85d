package ostreehost

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/test/ostreehost/internal/standin"
)

// Stateroot is the stateroot bootc installs into.
const Stateroot = "default"

// Options describe a host to install.
type Options struct {
	Tools *Tools
	// Image is the image to install (repository@digest).
	Image string
	// EnforceSigPolicy records --enforce-container-sigpolicy in the origin.
	EnforceSigPolicy bool
	// Insecure are registries (host:port) reached over plain HTTP.
	Insecure []string
	// Etc are files written into the installed deployment's /etc before
	// the first boot (machine-local configuration): path relative to /etc
	// → content.
	Etc map[string]string
}

// Host is an ostree sysroot in a temporary directory, booted.
type Host struct {
	T        testing.TB
	Dir      string // the host's directory
	Sysroot  string // the physical root
	Run      string // the persistent /run of the current boot
	tools    *Tools
	env      []string // the environment of every command in the host
	ostree   []string // the part of env ostree and the stand-in read
	bootID   string   // the file bound over /proc/sys/kernel/random/boot_id
	deployed string   // the booted deployment's directory
	boots    int
	powerCut bool // the next shutdown loses power before finalizing
}

// New installs opts.Image into a new sysroot and boots it.
func New(t testing.TB, opts Options) *Host {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	h := &Host{T: t, Dir: dir, Sysroot: filepath.Join(dir, "sysroot"), Run: filepath.Join(dir, "run"),
		tools: opts.Tools, bootID: filepath.Join(dir, "boot_id")}
	h.ostree = []string{
		// No chattr +i on deployment roots (the temporary directory must
		// stay removable) and no syncfs/fsfreeze of the test machine.
		"OSTREE_SYSROOT_DEBUG=mutable-deployments", "OSTREE_SYSROOT_OPTS=skip-sync",
		standin.EnvInsecure + "=" + strings.Join(opts.Insecure, ","),
	}
	h.env = append([]string{"PATH=/usr/bin:/usr/sbin", "HOME=/root", "LANG=C.UTF-8"}, h.ostree...)
	t.Cleanup(h.cleanup)
	if err := opts.Tools.hideHostEtc(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.Sysroot, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(h.Sysroot, "ostree/repo")
	for _, args := range [][]string{
		{"admin", "init-fs", h.Sysroot},
		{"admin", "os-init", "--sysroot=" + h.Sysroot, Stateroot},
		{"config", "--repo=" + repo, "set", "core.fsync", "false"},
	} {
		h.mustOutside("ostree", args...)
	}
	install := []string{"ostreehost", "install", "--sysroot=" + h.Sysroot, "--stateroot=" + Stateroot}
	if opts.EnforceSigPolicy {
		install = append(install, "--enforce-container-sigpolicy")
	}
	h.mustOutside(opts.Tools.Bin("bootc"), append(install, opts.Image)...)
	dep, err := h.blsDefault()
	if err != nil {
		t.Fatal(err)
	}
	for rel, content := range opts.Etc {
		writeFile(t, filepath.Join(dep, "etc", rel), content)
	}
	h.boot()
	return h
}

func (h *Host) mustOutside(name string, args ...string) {
	h.T.Helper()
	if out, err := h.outside(name, args...); err != nil {
		h.T.Fatalf("%v\n%s", err, out)
	}
}

// outside runs a command on the test machine with the host's ostree
// environment.
func (h *Host) outside(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), h.ostree...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// cleanup leaves the directory removable even if a deployment root got
// the immutable bit.
func (h *Host) cleanup() {
	deps, _ := filepath.Glob(filepath.Join(h.Sysroot, "ostree/deploy/*/deploy/*.[0-9]*"))
	for _, d := range deps {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			_ = exec.Command("chattr", "-i", d).Run()
		}
	}
}

// Result is how a command run in the host ended.
type Result struct {
	Exit     int
	Killed   bool // died by SIGKILL without a reboot (a fault point)
	Rebooted bool // it ended the boot (systemctl reboot, bootc --apply)
	Stdout   string
	Stderr   string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d killed %v rebooted %v\nstdout:\n%s\nstderr:\n%s", r.Exit, r.Killed, r.Rebooted, r.Stdout, r.Stderr)
}

// Exec runs argv in the booted host (with extra environment env). When
// the command ended the boot, the host shuts down and boots again before
// Exec returns.
func (h *Host) Exec(env []string, argv ...string) Result {
	h.T.Helper()
	res, err := h.enter(env, argv...)
	if err != nil {
		h.T.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.Run, standin.RebootMarker)); err == nil {
		res.Rebooted, res.Killed = true, false
		h.Reboot()
	}
	return res
}

// enter runs argv in the booted deployment: the host's init (pid 1 of new
// mount and pid namespaces) mounts, chroots and runs it.
func (h *Host) enter(env []string, argv ...string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"ostreehost", "boot", "--sysroot=" + h.Sysroot, "--run=" + h.Run, "--deployment=" + h.deployed,
		"--tools=" + h.tools.Dir, "--boot-id=" + h.bootID, "--"}
	cmd := exec.CommandContext(ctx, h.tools.Bin("bootc"), append(args, argv...)...)
	cmd.Env = append(append([]string(nil), h.env...), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Exit = ee.ExitCode()
		res.Killed = res.Exit == 128+int(syscall.SIGKILL)
	default:
		return res, fmt.Errorf("boot %v: %w", argv, err)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%v in the ostree host did not finish in time: %s", argv, res)
	}
	return res, nil
}

// Reboot shuts the host down (finalizing a staged deployment, as
// ostree-finalize-staged.service does) and boots the BLS default.
func (h *Host) Reboot() {
	h.T.Helper()
	if h.powerCut {
		h.powerCut = false
		h.boot()
		return
	}
	if _, err := os.Stat(filepath.Join(h.Run, "ostree/staged-deployment")); err == nil {
		res, err := h.enter(nil, "ostree", "admin", "finalize-staged")
		if err != nil || res.Exit != 0 {
			h.T.Fatalf("shutdown: ostree admin finalize-staged: %v %s", err, res)
		}
	}
	h.boot()
}

// CutPowerAtNextShutdown makes the next shutdown lose power before
// ostree-finalize-staged runs: a staged deployment never becomes a boot
// entry and the host boots what it ran before.
func (h *Host) CutPowerAtNextShutdown() { h.powerCut = true }

// boot starts a boot: an empty /run, a new boot ID, the BLS default.
func (h *Host) boot() {
	h.T.Helper()
	dep, err := h.blsDefault()
	if err != nil {
		h.T.Fatal(err)
	}
	if err := os.RemoveAll(h.Run); err != nil {
		h.T.Fatal(err)
	}
	writeFile(h.T, filepath.Join(h.Run, "ostree-booted"), "")
	writeFile(h.T, h.bootID, newBootID()+"\n")
	h.deployed = dep
	h.boots++
}

func newBootID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Boots counts the boots since the host was installed (the first included).
func (h *Host) Boots() int { return h.boots }

// BootedDir is the booted deployment's directory on the test machine.
func (h *Host) BootedDir() string { return h.deployed }

// Status runs `bootc status --format=json --format-version=1` in the host,
// validates it against bootc's JSON Schema and parses it with the agent's
// parser.
func (h *Host) Status() *bootc.Host {
	h.T.Helper()
	r := h.Exec(nil, "bootc", "status", "--format=json", "--format-version=1")
	if r.Exit != 0 {
		h.T.Fatalf("bootc status: %s", r)
	}
	if err := ValidateStatus([]byte(r.Stdout)); err != nil {
		h.T.Fatalf("bootc status does not follow bootc's schema: %v\n%s", err, r.Stdout)
	}
	st, err := bootc.ParseStatus([]byte(r.Stdout))
	if err != nil {
		h.T.Fatalf("parse bootc status: %v\n%s", err, r.Stdout)
	}
	return st
}

// Calls reads the stand-in's call log (in the stateroot's /var).
func (h *Host) Calls() []Call {
	h.T.Helper()
	calls, err := standin.ReadCalls(h.VarPath(strings.TrimPrefix(standin.CallLog, "/var/")))
	if err != nil {
		h.T.Fatal(err)
	}
	return calls
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
