package bootc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// ErrRebooting is returned (wrapped) when a command run with --apply was
// killed by SIGTERM or SIGKILL, or exited 143/137: bootc's --apply never
// returns on success, it is killed by the shutdown it started. Callers treat
// it as expected. If the host is somehow still up afterwards, the caller
// should read Status again rather than assume the reboot happened.
var ErrRebooting = errors.New("bootc was killed by the reboot it started (expected with --apply)")

// ErrUnsupported is returned (wrapped) when an option needs a newer bootc
// than the host has. The option is never silently dropped.
var ErrUnsupported = errors.New("not supported by this bootc version")

// waitDelay bounds how long Wait waits for bootc's output pipes after it
// exited or was killed, in case a child it spawned holds them open.
const waitDelay = 10 * time.Second

// Driver runs the bootc CLI. It is safe for concurrent use; bootc itself
// serializes writers with the sysroot lock.
type Driver struct {
	path string
	env  []string

	mu      sync.Mutex
	version *Version // probed once: bootc only changes with a reboot, which ends this process
}

// Option configures a Driver.
type Option func(*Driver) error

// WithPath sets the bootc executable: a path, or a name looked up in PATH.
// The default is "bootc".
func WithPath(bin string) Option {
	return func(d *Driver) error {
		if strings.TrimSpace(bin) == "" {
			return errors.New("bootc path must not be empty")
		}
		d.path = bin
		return nil
	}
}

// WithEnv adds KEY=VALUE entries to the environment bootc inherits from
// this process (a later entry for the same key wins).
func WithEnv(kv ...string) Option {
	return func(d *Driver) error {
		for _, e := range kv {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				return fmt.Errorf("bootc environment entry %q is not KEY=VALUE", e)
			}
		}
		d.env = append(d.env, kv...)
		return nil
	}
}

// New returns a driver for the bootc CLI.
func New(opts ...Option) (*Driver, error) {
	d := &Driver{path: "bootc"}
	for _, o := range opts {
		if err := o(d); err != nil {
			return nil, fmt.Errorf("configure bootc driver: %w", err)
		}
	}
	return d, nil
}

// Path is the bootc executable the driver runs.
func (d *Driver) Path() string { return d.path }

// Result is what a bootc command printed. Switch, Rollback and Upgrade
// return it also alongside errors from a command that ran (a
// *CommandError, ErrRebooting, or a cancelled context), so the output
// before the failure or reboot is not lost.
type Result struct {
	Args   []string // bootc's arguments, without the executable
	Stdout string
	Stderr string
}

// Unchanged reports bootc's "Image specification is unchanged." (a switch
// to the spec already staged or booted; nothing was pulled).
func (r *Result) Unchanged() bool {
	return r != nil && strings.Contains(r.Stdout, "Image specification is unchanged.")
}

// NoUpdate reports bootc's "No update available." from upgrade.
func (r *Result) NoUpdate() bool {
	return r != nil && strings.Contains(r.Stdout, "No update available.")
}

// Queued reports that bootc staged a new deployment ("Queued for next boot: …").
func (r *Result) Queued() bool {
	return r != nil && strings.Contains(r.Stdout, "Queued for next boot: ")
}

// CommandError is a bootc command that failed. Error() carries bootc's
// "error: …" line(s) from stderr.
type CommandError struct {
	Args     []string // bootc's arguments, without the executable
	ExitCode int      // -1 when killed by a signal
	Signal   syscall.Signal
	Stdout   string
	Stderr   string
	Err      error // the *exec.ExitError
}

func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString(describe(e.Args))
	if e.Signal != 0 {
		fmt.Fprintf(&b, ": killed by signal %s", e.Signal)
	} else {
		fmt.Fprintf(&b, ": exit code %d", e.ExitCode)
	}
	if msg := errorLines(e.Stderr); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// errorLines picks bootc's error message out of stderr: its "error: …"
// lines (bootc 0.1.x wrote "ERROR …"), else the last non-empty lines.
func errorLines(stderr string) string {
	var picked, all []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		all = append(all, l)
		if strings.HasPrefix(l, "error:") || strings.HasPrefix(l, "ERROR ") {
			picked = append(picked, l)
		}
	}
	if len(picked) == 0 {
		picked = all[max(0, len(all)-3):]
	}
	return strings.Join(picked, "; ")
}

func describe(args []string) string { return "bootc " + strings.Join(args, " ") }

// Version runs `bootc --version` once and returns the parsed version.
func (d *Driver) Version(ctx context.Context) (Version, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.version != nil {
		return *d.version, nil
	}
	res, err := d.run(ctx, []string{"--version"}, false)
	if err != nil {
		return Version{}, err
	}
	v, err := ParseVersion(res.Stdout)
	if err != nil {
		return Version{}, fmt.Errorf("bootc --version: %w", err)
	}
	d.version = &v
	return v, nil
}

// Status runs `bootc status --format=json --format-version=1` (bootc ≥
// 0.1.15 prints apiVersion v1; older releases lack --format-version) and
// parses it.
func (d *Driver) Status(ctx context.Context) (*Host, error) {
	args := []string{"status", "--format=json", "--format-version=1"}
	res, err := d.run(ctx, args, false)
	if err != nil {
		return nil, err
	}
	h, err := ParseStatus([]byte(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(args), err)
	}
	return h, nil
}

// SoftRebootMode is the value of --soft-reboot.
type SoftRebootMode string

// Soft reboot modes.
const (
	// SoftRebootNone does not pass --soft-reboot.
	SoftRebootNone SoftRebootMode = ""
	// SoftRebootAuto soft-reboots when the target deployment is capable,
	// else reboots fully.
	SoftRebootAuto SoftRebootMode = "auto"
	// SoftRebootRequired fails when the target is not soft-reboot capable.
	SoftRebootRequired SoftRebootMode = "required"
)

func (m SoftRebootMode) validate() error {
	switch m {
	case SoftRebootNone, SoftRebootAuto, SoftRebootRequired:
		return nil
	}
	return fmt.Errorf("soft reboot mode %q is not one of \"auto\", \"required\" or empty", string(m))
}

// SwitchOptions are the flags of `bootc switch`.
type SwitchOptions struct {
	// EnforceSigPolicy passes --enforce-container-sigpolicy. Set it on
	// every switch when the host requires signatures: bootc drops
	// enforcement on a switch without it.
	EnforceSigPolicy bool
	// Apply reboots into the new deployment (≥ 0.1.16); see ErrRebooting.
	Apply bool
	// SoftReboot prepares a soft reboot (≥ 1.7).
	SoftReboot SoftRebootMode
	// Quiet hides progress bars.
	Quiet bool
}

// RollbackOptions are the flags of `bootc rollback`.
type RollbackOptions struct {
	// Apply reboots into the rollback deployment (≥ 1.1.7).
	Apply      bool
	SoftReboot SoftRebootMode
}

// UpgradeOptions are the flags of `bootc upgrade`.
type UpgradeOptions struct {
	// Check only fetches the manifest and config and records the result
	// in status.booted.cachedUpdate.
	Check bool
	// DownloadOnly stages with finalization locked (≥ 1.12): an unplanned
	// reboot discards the staged deployment instead of applying it.
	DownloadOnly bool
	// FromDownloaded unlocks the staged deployment without contacting the
	// registry (≥ 1.12).
	FromDownloaded bool
	// Apply reboots after staging, or into an unchanged staged deployment.
	Apply      bool
	SoftReboot SoftRebootMode
	Quiet      bool
}

// gate is a flag and the release that introduced it.
type gate struct {
	flag string
	min  Version
}

// requireFlags probes the version only when a gated flag is used.
func (d *Driver) requireFlags(ctx context.Context, verb string, gates []gate) error {
	if len(gates) == 0 {
		return nil
	}
	v, err := d.Version(ctx)
	if err != nil {
		return fmt.Errorf("check bootc supports the flags for %s: %w", verb, err)
	}
	for _, g := range gates {
		if !v.AtLeast(g.min) {
			return fmt.Errorf("bootc %s %s needs bootc %s or newer, this host has bootc %s: %w",
				verb, g.flag, g.min, v, ErrUnsupported)
		}
	}
	return nil
}

var sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidatePinnedRef checks that ref is registry/repository@sha256:<hex>
// with an explicit registry and no tag: bootsync never switches to a moving
// tag, and bootc compares specs as strings, so one canonical form keeps a
// repeated switch a no-op.
func ValidatePinnedRef(ref string) error {
	base, dig, ok := strings.Cut(ref, "@")
	if !ok {
		return fmt.Errorf("image reference %q is not pinned to a digest (want registry/repository@sha256:…); bootsync never switches to a tag", ref)
	}
	if !sha256Digest.MatchString(dig) {
		return fmt.Errorf("image reference %q: digest %q is not sha256:<64 lowercase hex>", ref, dig)
	}
	if last := base[strings.LastIndex(base, "/")+1:]; strings.Contains(last, ":") {
		return fmt.Errorf("image reference %q has both a tag and a digest; use registry/repository@sha256:… (bootc rewrites tag@digest)", ref)
	}
	if _, err := name.NewDigest(ref, name.StrictValidation); err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	return nil
}

// Switch runs `bootc switch` to imageRef, which must be digest-pinned (see
// ValidatePinnedRef). With Apply, success is the wrapped ErrRebooting.
func (d *Driver) Switch(ctx context.Context, imageRef string, opts SwitchOptions) (*Result, error) {
	if err := ValidatePinnedRef(imageRef); err != nil {
		return nil, fmt.Errorf("bootc switch: %w", err)
	}
	if err := opts.SoftReboot.validate(); err != nil {
		return nil, fmt.Errorf("bootc switch: %w", err)
	}
	args := []string{"switch"}
	var gates []gate
	if opts.Quiet {
		args = append(args, "--quiet")
	}
	if opts.EnforceSigPolicy {
		args = append(args, "--enforce-container-sigpolicy")
		gates = append(gates, gate{"--enforce-container-sigpolicy", minSigPolicy})
	}
	if opts.Apply {
		args = append(args, "--apply")
		gates = append(gates, gate{"--apply", minSwitchApply})
	}
	if opts.SoftReboot != SoftRebootNone {
		args = append(args, "--soft-reboot="+string(opts.SoftReboot))
		gates = append(gates, gate{"--soft-reboot", minSoftReboot})
	}
	args = append(args, imageRef)
	if err := d.requireFlags(ctx, "switch", gates); err != nil {
		return nil, err
	}
	return d.run(ctx, args, opts.Apply)
}

// Rollback runs `bootc rollback`: it toggles the boot order between the
// booted and rollback deployments and discards any staged deployment.
func (d *Driver) Rollback(ctx context.Context, opts RollbackOptions) (*Result, error) {
	if err := opts.SoftReboot.validate(); err != nil {
		return nil, fmt.Errorf("bootc rollback: %w", err)
	}
	args := []string{"rollback"}
	var gates []gate
	if opts.Apply {
		args = append(args, "--apply")
		gates = append(gates, gate{"--apply", minRollbackApply})
	}
	if opts.SoftReboot != SoftRebootNone {
		args = append(args, "--soft-reboot="+string(opts.SoftReboot))
		gates = append(gates, gate{"--soft-reboot", minSoftReboot})
	}
	if err := d.requireFlags(ctx, "rollback", gates); err != nil {
		return nil, err
	}
	return d.run(ctx, args, opts.Apply)
}

// Upgrade runs `bootc upgrade`. Combinations bootc rejects are refused
// here with a clear error before anything runs.
func (d *Driver) Upgrade(ctx context.Context, opts UpgradeOptions) (*Result, error) {
	if err := opts.SoftReboot.validate(); err != nil {
		return nil, fmt.Errorf("bootc upgrade: %w", err)
	}
	conflicts := []struct {
		a, b   bool
		fa, fb string
	}{
		{opts.Check, opts.Apply, "--check", "--apply"},
		{opts.Check, opts.DownloadOnly, "--check", "--download-only"},
		{opts.Check, opts.FromDownloaded, "--check", "--from-downloaded"},
		{opts.Check, opts.SoftReboot != SoftRebootNone, "--check", "--soft-reboot"},
		{opts.DownloadOnly, opts.Apply, "--download-only", "--apply"},
		{opts.DownloadOnly, opts.FromDownloaded, "--download-only", "--from-downloaded"},
	}
	for _, c := range conflicts {
		if c.a && c.b {
			return nil, fmt.Errorf("bootc upgrade: %s cannot be used with %s", c.fa, c.fb)
		}
	}
	args := []string{"upgrade"}
	var gates []gate
	if opts.Quiet {
		args = append(args, "--quiet")
	}
	if opts.Check {
		args = append(args, "--check")
	}
	if opts.DownloadOnly {
		args = append(args, "--download-only")
		gates = append(gates, gate{"--download-only", minDownloadOnly})
	}
	if opts.FromDownloaded {
		args = append(args, "--from-downloaded")
		gates = append(gates, gate{"--from-downloaded", minDownloadOnly})
	}
	if opts.Apply {
		args = append(args, "--apply")
		gates = append(gates, gate{"--apply", minUpgradeApply})
	}
	if opts.SoftReboot != SoftRebootNone {
		args = append(args, "--soft-reboot="+string(opts.SoftReboot))
		gates = append(gates, gate{"--soft-reboot", minSoftReboot})
	}
	if err := d.requireFlags(ctx, "upgrade", gates); err != nil {
		return nil, err
	}
	return d.run(ctx, args, opts.Apply)
}

// run executes bootc with args. With apply, death by SIGTERM/SIGKILL is the
// expected end and becomes ErrRebooting.
func (d *Driver) run(ctx context.Context, args []string, apply bool) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", describe(args), err)
	}
	cmd := exec.CommandContext(ctx, d.path, args...)
	if len(d.env) > 0 {
		cmd.Env = append(os.Environ(), d.env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	res := &Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: bootc exited 0 but something it started kept
		// the output pipes open; the command itself succeeded.
		return res, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// We killed it; that is never the reboot.
		return res, fmt.Errorf("%s: stopped: %w", describe(args), ctxErr)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return res, fmt.Errorf("run %s (is this a bootc host?): %w", describe(args), err)
	}
	cerr := &CommandError{Args: args, ExitCode: exitErr.ExitCode(), Stdout: res.Stdout, Stderr: res.Stderr, Err: err}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		cerr.Signal = ws.Signal()
	}
	if apply && killedByShutdown(cerr) {
		how := "exit code " + fmt.Sprint(cerr.ExitCode)
		if cerr.Signal != 0 {
			how = "signal " + cerr.Signal.String()
		}
		return res, fmt.Errorf("%s: %s: %w", describe(args), how, ErrRebooting)
	}
	return res, cerr
}

// killedByShutdown: systemd stops processes with SIGTERM, then SIGKILL;
// a wrapper shell or unit reports those as 143 and 137.
func killedByShutdown(e *CommandError) bool {
	switch e.Signal {
	case syscall.SIGTERM, syscall.SIGKILL:
		return true
	}
	return e.Signal == 0 && (e.ExitCode == 128+int(syscall.SIGTERM) || e.ExitCode == 128+int(syscall.SIGKILL))
}
