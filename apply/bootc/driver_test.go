package bootc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/test/bootcsim"
)

// The driver runs against the real simulator executable (test/bootcsim),
// which speaks bootc's CLI against a state file and a real in-process
// registry.

const (
	helperEnv    = "BOOTC_DRIVER_TEST_AGENT"
	helperRefEnv = "BOOTC_DRIVER_TEST_REF"
	initDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		agentHelper()
		return
	}
	code := m.Run()
	bootcsim.Cleanup()
	os.Exit(code)
}

// agentHelper plays an agent in a child process: it switches with --apply
// and reports if it is still alive afterwards.
func agentHelper() {
	d, err := bootc.New() // "bootc" from PATH, as the agent finds it
	if err != nil {
		fmt.Println("new:", err)
		os.Exit(3)
	}
	_, err = d.Switch(context.Background(), os.Getenv(helperRefEnv), bootc.SwitchOptions{Apply: true})
	fmt.Println("survived:", err)
	os.Exit(0)
}

// setup starts a registry and a simulated host booted into an image that
// is not in it.
func setup(t *testing.T, opts bootcsim.Options) (*bootcsim.Registry, *bootcsim.Host, *bootc.Driver) {
	t.Helper()
	reg := bootcsim.NewRegistry(t, bootcsim.RegistryOptions{})
	if opts.Image == "" {
		opts.Image = reg.Host + "/os:stable"
		opts.Digest = initDigest
	}
	opts.InsecureRegistries = append(opts.InsecureRegistries, reg.Host)
	h := bootcsim.NewHost(t, opts)
	return reg, h, h.Driver(t)
}

func status(t *testing.T, d *bootc.Driver) *bootc.Host {
	t.Helper()
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// verbs lists the verbs of the logged calls (the driver's version probe
// shows as "--version").
func verbs(calls []bootcsim.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, strings.Join(c.Argv, " "))
	}
	return out
}

func TestNewValidatesOptions(t *testing.T) {
	if _, err := bootc.New(bootc.WithPath("")); err == nil {
		t.Error("an empty path was accepted")
	}
	if _, err := bootc.New(bootc.WithEnv("NOEQUALS")); err == nil {
		t.Error("an env entry without '=' was accepted")
	}
	if _, err := bootc.New(bootc.WithEnv("=x")); err == nil {
		t.Error("an env entry without a key was accepted")
	}
	d, err := bootc.New()
	if err != nil || d.Path() != "bootc" {
		t.Fatalf("default driver: %v, path %q", err, d.Path())
	}
}

func TestStatusAndVersion(t *testing.T) {
	ctx := context.Background()
	_, h, d := setup(t, bootcsim.Options{})
	st := status(t, d)
	if !st.IsBootc() || st.BootedDigest() != initDigest || st.StagedDigest() != "" || st.APIVersion != bootc.APIVersionV1 {
		t.Fatalf("status %+v", st)
	}
	v, err := d.Version(ctx)
	if err != nil || v.String() != bootcsim.DefaultVersion {
		t.Fatalf("Version = %v, %v", v, err)
	}
	if _, err := d.Version(ctx); err != nil {
		t.Fatal(err)
	}
	got := verbs(h.Calls(t))
	want := []string{"status --format=json --format-version=1", "--version"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls %q, want %q (the version is probed once)", got, want)
	}

	pkgMode := bootcsim.NewHost(t, bootcsim.Options{})
	if st := status(t, pkgMode.Driver(t)); st.IsBootc() {
		t.Fatalf("a host bootc did not deploy reads as bootc: %+v", st)
	}
}

func TestSwitchStagesDigestPinnedImage(t *testing.T) {
	ctx := context.Background()
	reg, h, d := setup(t, bootcsim.Options{})
	img := bootcsim.Image(t, bootcsim.ImageOptions{Version: "2"})
	ref := reg.Push(t, "os", "v2", img)

	res, err := d.Switch(ctx, ref, bootc.SwitchOptions{EnforceSigPolicy: true, Quiet: true})
	if err != nil {
		t.Fatalf("Switch: %v", err)
	}
	if !res.Queued() || res.Unchanged() || !strings.Contains(res.Stdout, "Digest: "+bootcsim.Digest(t, img)) {
		t.Fatalf("stdout %q", res.Stdout)
	}
	st := status(t, d)
	if st.StagedDigest() != bootcsim.Digest(t, img) || st.BootedDigest() != initDigest {
		t.Fatalf("staged %s booted %s", st.StagedDigest(), st.BootedDigest())
	}
	if st.Spec.Image.Image != ref || !st.Spec.Image.EnforcesContainerPolicy() {
		t.Fatalf("spec.image %+v, want %s enforcing the container policy", st.Spec.Image, ref)
	}

	res, err = d.Switch(ctx, ref, bootc.SwitchOptions{EnforceSigPolicy: true})
	if err != nil || !res.Unchanged() || res.Queued() {
		t.Fatalf("second Switch: %v, stdout %q", err, res.Stdout)
	}
	calls := h.Calls(t)
	last := calls[len(calls)-1]
	if last.Argv[0] != "switch" || last.Pulled {
		t.Fatalf("an unchanged switch pulled: %+v", last)
	}
}

func TestSwitchRefusesRefsThatAreNotDigestPinned(t *testing.T) {
	reg, h, d := setup(t, bootcsim.Options{})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	digest := ref[strings.Index(ref, "@")+1:]
	for _, bad := range []string{
		reg.Host + "/os:v2",
		reg.Host + "/os",
		reg.Host + "/os:v2@" + digest,
		"os@" + digest,
	} {
		if _, err := d.Switch(context.Background(), bad, bootc.SwitchOptions{}); err == nil {
			t.Errorf("Switch(%q) ran", bad)
		}
	}
	if _, err := d.Switch(context.Background(), ref, bootc.SwitchOptions{SoftReboot: "sometimes"}); err == nil {
		t.Error("an invalid soft reboot mode was accepted")
	}
	if calls := h.Calls(t); len(calls) != 0 {
		t.Fatalf("refused switches reached bootc: %q", verbs(calls))
	}
}

func TestCommandErrorCarriesBootcStderr(t *testing.T) {
	reg, _, d := setup(t, bootcsim.Options{})
	reg.Push(t, "os", "v1", bootcsim.Image(t, bootcsim.ImageOptions{}))
	missing := reg.Host + "/os@sha256:" + strings.Repeat("0", 64)
	_, err := d.Switch(context.Background(), missing, bootc.SwitchOptions{})
	var cerr *bootc.CommandError
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v (%T), want a *CommandError", err, err)
	}
	if cerr.ExitCode != 1 || cerr.Signal != 0 || cerr.Args[0] != "switch" {
		t.Fatalf("CommandError %+v", cerr)
	}
	msg := err.Error()
	for _, part := range []string{"bootc switch " + missing, "exit code 1", "error: Switching: Pulling: ", "MANIFEST_UNKNOWN"} {
		if !strings.Contains(msg, part) {
			t.Errorf("error %q does not contain %q", msg, part)
		}
	}
	if errors.Is(err, bootc.ErrRebooting) {
		t.Error("a failed switch reads as rebooting")
	}
	if st := status(t, d); st.Status.Staged != nil {
		t.Fatal("a failed switch staged something")
	}

	_, err = d.Rollback(context.Background(), bootc.RollbackOptions{})
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "error: No rollback available") {
		t.Fatalf("Rollback on a fresh host: %v", err)
	}
}

func TestApplyEndsInErrRebooting(t *testing.T) {
	ctx := context.Background()
	reg, h, d := setup(t, bootcsim.Options{})
	img := bootcsim.Image(t, bootcsim.ImageOptions{})
	ref := reg.Push(t, "os", "v2", img)
	res, err := d.Switch(ctx, ref, bootc.SwitchOptions{Apply: true})
	if !errors.Is(err, bootc.ErrRebooting) {
		t.Fatalf("Switch --apply: %v", err)
	}
	if !res.Queued() {
		t.Fatalf("output before the reboot was lost: %q", res.Stdout)
	}
	if st := status(t, d); st.BootedDigest() != bootcsim.Digest(t, img) || st.RollbackDigest() != initDigest {
		t.Fatalf("after --apply: booted %s rollback %s", st.BootedDigest(), st.RollbackDigest())
	}

	// Rollback --apply reboots into the previous deployment, without pulling.
	if _, err := d.Rollback(ctx, bootc.RollbackOptions{Apply: true}); !errors.Is(err, bootc.ErrRebooting) {
		t.Fatalf("Rollback --apply: %v", err)
	}
	if st := status(t, d); st.BootedDigest() != initDigest {
		t.Fatalf("after rollback --apply: booted %s", st.BootedDigest())
	}
	calls := h.Calls(t)
	var rollback *bootcsim.Call
	for i := range calls {
		if calls[i].Argv[0] == "rollback" {
			rollback = &calls[i]
		}
	}
	if rollback == nil || rollback.Pulled || !rollback.Rebooted {
		t.Fatalf("rollback call %+v, want rebooted without pulling", rollback)
	}

	// --apply with nothing to do returns normally: no reboot happened.
	_, err = d.Upgrade(ctx, bootc.UpgradeOptions{Apply: true})
	if err == nil || errors.Is(err, bootc.ErrRebooting) {
		// os:stable is not in the registry: the upgrade must fail, not "reboot".
		t.Fatalf("Upgrade --apply of a missing image: %v", err)
	}
	stable := bootcsim.Image(t, bootcsim.ImageOptions{Marker: "stable"})
	reg.Push(t, "os", "stable", stable)
	if _, err := d.Upgrade(ctx, bootc.UpgradeOptions{Apply: true}); !errors.Is(err, bootc.ErrRebooting) {
		t.Fatalf("Upgrade --apply of a new image: %v", err)
	}
	if got := status(t, d).BootedDigest(); got != bootcsim.Digest(t, stable) {
		t.Fatalf("booted %s after upgrade --apply", got)
	}
	res, err = d.Upgrade(ctx, bootc.UpgradeOptions{Apply: true})
	if err != nil || !res.NoUpdate() {
		t.Fatalf("Upgrade --apply with no update: %v, stdout %q", err, res.Stdout)
	}
}

// Two ways to reboot into an already staged, digest-pinned deployment:
// `switch --apply` with the same reference (bootc ≥ 1.16.3) does not
// contact the registry; `upgrade --apply` does (it re-fetches the
// manifest and finds the staged digest unchanged).
func TestRebootIntoStagedDeployment(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"switch", "upgrade"} {
		t.Run(how, func(t *testing.T) {
			reg, h, d := setup(t, bootcsim.Options{})
			img := bootcsim.Image(t, bootcsim.ImageOptions{})
			ref := reg.Push(t, "os", "v2", img)
			if _, err := d.Switch(ctx, ref, bootc.SwitchOptions{}); err != nil {
				t.Fatal(err)
			}
			var res *bootc.Result
			var err error
			if how == "switch" {
				res, err = d.Switch(ctx, ref, bootc.SwitchOptions{Apply: true})
			} else {
				res, err = d.Upgrade(ctx, bootc.UpgradeOptions{Apply: true})
			}
			if !errors.Is(err, bootc.ErrRebooting) {
				t.Fatalf("%s --apply: %v", how, err)
			}
			if how == "switch" && !res.Unchanged() || how == "upgrade" && !strings.Contains(res.Stdout, "Staged update present, not changed") {
				t.Fatalf("stdout %q", res.Stdout)
			}
			if got := status(t, d).BootedDigest(); got != bootcsim.Digest(t, img) {
				t.Fatalf("booted %s", got)
			}
			calls := h.Calls(t)
			var last bootcsim.Call
			for _, c := range calls {
				if c.Argv[0] == how {
					last = c
				}
			}
			if !last.Rebooted || last.Pulled != (how == "upgrade") {
				t.Fatalf("%s call %+v", how, last)
			}
		})
	}
}

// A killed --apply is only "rebooting" when bootc was killed by the
// shutdown; when our own context stops it, that is an error.
func TestCancelledApplyIsNotRebooting(t *testing.T) {
	reg, h, d := setup(t, bootcsim.Options{})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	// Hold the sysroot lock so bootc waits until the context ends.
	lock, err := os.OpenFile(h.StatePath+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = d.Switch(ctx, ref, bootc.SwitchOptions{Apply: true})
	if err == nil || errors.Is(err, bootc.ErrRebooting) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Switch --apply stopped by our context: %v", err)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if st := status(t, d); st.BootedDigest() != initDigest || st.Status.Staged != nil {
		t.Fatalf("the cancelled switch changed the host: %+v", st.Status)
	}
}

// With BOOTCSIM_KILL_PARENT=1 the simulated reboot also kills the agent
// that called bootc, as a real reboot would.
func TestApplyKillsTheCallingAgent(t *testing.T) {
	reg, h, _ := setup(t, bootcsim.Options{KillParent: true})
	img := bootcsim.Image(t, bootcsim.ImageOptions{})
	ref := reg.Push(t, "os", "v2", img)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(h.Env(), helperEnv+"=1", helperRefEnv+"="+ref)
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("agent was not killed: err %v, output %q", err, out)
	}
	ws := exitErr.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || strings.Contains(string(out), "survived") {
		t.Fatalf("agent ended with %v, output %q; want death by SIGKILL", ws, out)
	}
	if got := h.Status(t).BootedDigest(); got != bootcsim.Digest(t, img) {
		t.Fatalf("booted %s, want the switched image", got)
	}
}

func TestVersionGatesRefuseInsteadOfDroppingFlags(t *testing.T) {
	ctx := context.Background()
	reg, h, d := setup(t, bootcsim.Options{Version: "1.1.6"})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	for name, call := range map[string]func() error{
		"upgrade --download-only": func() error {
			_, err := d.Upgrade(ctx, bootc.UpgradeOptions{DownloadOnly: true})
			return err
		},
		"upgrade --from-downloaded": func() error {
			_, err := d.Upgrade(ctx, bootc.UpgradeOptions{FromDownloaded: true})
			return err
		},
		"switch --soft-reboot": func() error {
			_, err := d.Switch(ctx, ref, bootc.SwitchOptions{SoftReboot: bootc.SoftRebootAuto})
			return err
		},
		"rollback --apply": func() error {
			_, err := d.Rollback(ctx, bootc.RollbackOptions{Apply: true})
			return err
		},
	} {
		err := call()
		if !errors.Is(err, bootc.ErrUnsupported) || !strings.Contains(err.Error(), "this host has bootc 1.1.6") {
			t.Errorf("%s on bootc 1.1.6: %v", name, err)
		}
	}
	// Only the version probe ran.
	if got := verbs(h.Calls(t)); len(got) != 1 || got[0] != "--version" {
		t.Fatalf("calls %q", got)
	}
	// The simulator enforces the same gate as bootc would, so a flag
	// smuggled past the driver fails loudly rather than being ignored.
	r := h.Run(t, "upgrade", "--download-only")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "unexpected argument '--download-only'") {
		t.Fatalf("simulated bootc 1.1.6 accepted --download-only: %+v", r)
	}
	// What 1.1.6 has works.
	if _, err := d.Switch(ctx, ref, bootc.SwitchOptions{EnforceSigPolicy: true, Apply: true}); !errors.Is(err, bootc.ErrRebooting) {
		t.Fatalf("switch --apply on 1.1.6: %v", err)
	}
}

func TestUpgradeRefusesConflictingOptions(t *testing.T) {
	_, h, d := setup(t, bootcsim.Options{})
	for _, opts := range []bootc.UpgradeOptions{
		{Check: true, Apply: true},
		{Check: true, DownloadOnly: true},
		{Check: true, FromDownloaded: true},
		{Check: true, SoftReboot: bootc.SoftRebootAuto},
		{DownloadOnly: true, Apply: true},
		{DownloadOnly: true, FromDownloaded: true},
		{SoftReboot: "yes"},
	} {
		if _, err := d.Upgrade(context.Background(), opts); err == nil {
			t.Errorf("Upgrade(%+v) ran", opts)
		}
	}
	if calls := h.Calls(t); len(calls) != 0 {
		t.Fatalf("refused upgrades reached bootc: %q", verbs(calls))
	}
}

func TestRollbackToggles(t *testing.T) {
	ctx := context.Background()
	reg, h, d := setup(t, bootcsim.Options{})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	if _, err := d.Switch(ctx, ref, bootc.SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	h.Reboot(t)
	res, err := d.Rollback(ctx, bootc.RollbackOptions{})
	if err != nil || res.Stdout != "Next boot: rollback deployment\n" {
		t.Fatalf("Rollback: %v, stdout %q", err, res.Stdout)
	}
	if st := status(t, d); !st.Status.RollbackQueued || st.Spec.BootOrder != bootc.BootOrderRollback {
		t.Fatalf("after rollback: %+v", st.Status)
	}
	res, err = d.Rollback(ctx, bootc.RollbackOptions{})
	if err != nil || !strings.Contains(res.Stdout, "Next boot: current deployment") {
		t.Fatalf("second Rollback: %v, stdout %q", err, res.Stdout)
	}
	if st := status(t, d); st.Status.RollbackQueued {
		t.Fatal("second rollback did not revert")
	}
}

func TestDownloadOnlyThenFromDownloaded(t *testing.T) {
	ctx := context.Background()
	reg, h, d := setup(t, bootcsim.Options{Version: "1.12.0"})
	img := bootcsim.Image(t, bootcsim.ImageOptions{})
	reg.Push(t, "os", "stable", img)
	if _, err := d.Upgrade(ctx, bootc.UpgradeOptions{DownloadOnly: true, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	st := status(t, d)
	if st.StagedDigest() != bootcsim.Digest(t, img) || !st.Status.Staged.DownloadOnly {
		t.Fatalf("staged %+v, want a locked deployment", st.Status.Staged)
	}
	before := len(h.Calls(t))
	if _, err := d.Upgrade(ctx, bootc.UpgradeOptions{FromDownloaded: true, Apply: true}); !errors.Is(err, bootc.ErrRebooting) {
		t.Fatalf("from-downloaded --apply: %v", err)
	}
	for _, c := range h.Calls(t)[before:] {
		if c.Pulled {
			t.Fatalf("%v contacted the registry", c.Argv)
		}
	}
	if got := status(t, d).BootedDigest(); got != bootcsim.Digest(t, img) {
		t.Fatalf("booted %s", got)
	}
}

func BenchmarkDriverStatus(b *testing.B) {
	h := bootcsim.NewHost(b, bootcsim.Options{Image: "quay.io/example/os@" + initDigest, Digest: initDigest})
	d := h.Driver(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := d.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
