package standin

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/apply/bootc"
)

// RebootMarker is written under /run by the host's `systemctl reboot`
// (and bootc's --apply) before the boot ends; the harness then shuts the
// host down (finalize-staged) and boots it again.
const RebootMarker = "ostreehost/reboot-requested"

const hostUsage = `Test host controls (not part of bootc)

Usage: bootc ostreehost <COMMAND>

Commands:
  install --sysroot DIR --stateroot NAME [--enforce-container-sigpolicy] IMAGE
          Import IMAGE into an initialized sysroot and deploy it (not booted)
  boot    --sysroot DIR --run DIR --deployment DIR --tools DIR --boot-id FILE -- CMD...
          Run CMD in the booted deployment (pid 1 of new mount and pid namespaces)
`

func (inv *invocation) cmdHost(args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: hostUsage}
	}
	switch args[0] {
	case "install":
		return inv.cmdInstall(args[1:])
	case "boot":
		return inv.cmdBoot(args[1:])
	}
	return &exitError{code: 2, msg: hostUsage}
}

// cmdInstall is `bootc install` in miniature: import the image into the
// sysroot's repository and deploy it with its origin, before any boot.
func (inv *invocation) cmdInstall(args []string) error {
	fs := newFlagSet("bootc ostreehost install")
	root := fs.String("sysroot", "", "the sysroot directory (after ostree admin init-fs and os-init)")
	stateroot := fs.String("stateroot", "default", "the stateroot (os) name")
	enforce := fs.Bool("enforce-container-sigpolicy", false, "record signature enforcement in the origin")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *root == "" || len(pos) != 1 {
		return usage(fs.verb, "--sysroot and exactly one IMAGE are required")
	}
	ref := bootc.ImageReference{Image: pos[0], Transport: bootc.TransportRegistry}
	if *enforce {
		ref.Signature = &bootc.ImageSignature{Kind: bootc.SignatureContainerPolicy}
	}
	sys := Sysroot{Path: *root}
	inv.importer.Sysroot = sys
	st, err := sys.LoadState(inv.ctx)
	if err != nil {
		return err
	}
	img, err := inv.importer.Pull(inv.ctx, st, ref)
	if err != nil {
		return fmt.Errorf("Installing: Pulling: %w", err)
	}
	origin, err := writeOrigin(filepath.Join(sys.Repo(), "tmp"), ref)
	if err != nil {
		return err
	}
	defer os.Remove(origin)
	if _, err := sys.admin(inv.ctx, "deploy", "--os="+*stateroot, "--origin-file="+origin, img.Checksum); err != nil {
		return fmt.Errorf("Installing: %w", err)
	}
	fmt.Fprintf(inv.stdout, "Installed: %s\n  Digest: %s\n", imgrefDisplay(ref), img.Digest)
	return nil
}

// bootMounts are the mounts that make DEPLOYMENT look booted to
// libostree (as ostree-prepare-root would set it up), plus the host's
// /usr under the image's so that tools (sh, python3, ostree) exist.
func bootMounts(sysroot, run, dep, tools, bootID string) ([][5]string, error) {
	stateroot := filepath.Base(filepath.Dir(filepath.Dir(dep)))
	for _, p := range []string{dep, tools} {
		if strings.ContainsAny(p, ":,") {
			return nil, fmt.Errorf("path %q cannot be an overlay lower directory (':' or ',')", p)
		}
	}
	return [][5]string{ // source, target, fstype, data, "bind"/"rbind"/""
		{"", "/", "", "", "private"},
		{sysroot, dep + "/sysroot", "", "", "bind"},
		{"overlay", dep + "/usr", "overlay", "lowerdir=" + dep + "/usr:" + tools + ":/usr", ""},
		{sysroot + "/boot", dep + "/boot", "", "", "bind"},
		{sysroot + "/ostree/deploy/" + stateroot + "/var", dep + "/var", "", "", "bind"},
		{run, dep + "/run", "", "", "bind"},
		{"proc", dep + "/proc", "proc", "", ""},
		{bootID, dep + "/proc/sys/kernel/random/boot_id", "", "", "bind"},
		{"/dev", dep + "/dev", "", "", "rbind"},
		{"tmpfs", dep + "/tmp", "tmpfs", "mode=1777", ""},
	}, nil
}

func mountAll(mounts [][5]string) error {
	for _, m := range mounts {
		var flags uintptr
		switch m[4] {
		case "private":
			flags = unix.MS_REC | unix.MS_PRIVATE
		case "bind":
			flags = unix.MS_BIND
		case "rbind":
			flags = unix.MS_BIND | unix.MS_REC
		}
		if m[2] == "overlay" {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount(m[0], m[1], m[2], flags, m[3]); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m[0], m[1], err)
		}
	}
	return nil
}

// cmdBoot is the booted host's init: pid 1 of fresh mount and pid
// namespaces (the harness starts it so). It mounts, chroots into the
// deployment, runs CMD and reaps; SIGUSR1 (the host's `systemctl
// reboot`) kills every process of the boot. It exits as CMD did.
func (inv *invocation) cmdBoot(args []string) error {
	fs := newFlagSet("bootc ostreehost boot")
	sysroot := fs.String("sysroot", "", "")
	run := fs.String("run", "", "")
	dep := fs.String("deployment", "", "")
	tools := fs.String("tools", "", "")
	bootID := fs.String("boot-id", "", "")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *sysroot == "" || *run == "" || *dep == "" || *tools == "" || *bootID == "" || len(pos) == 0 {
		return usage(fs.verb, "--sysroot, --run, --deployment, --tools, --boot-id and a command are required")
	}
	if os.Getpid() != 1 {
		return fmt.Errorf("ostreehost boot must be pid 1 of a new pid namespace (it is %d)", os.Getpid())
	}
	mounts, err := bootMounts(*sysroot, *run, *dep, *tools, *bootID)
	if err != nil {
		return err
	}
	if err := mountAll(mounts); err != nil {
		return err
	}
	if err := unix.Chroot(*dep); err != nil {
		return fmt.Errorf("chroot %s: %w", *dep, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	code, err := initRun(pos)
	if err != nil {
		return err
	}
	return &exitError{code: code}
}

// initRun runs argv as pid 1's child, reaping every orphan, and returns
// its exit code (128+signal when killed).
func initRun(argv []string) (int, error) {
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, err
	}
	poweroff := make(chan os.Signal, 1)
	signal.Notify(poweroff, syscall.SIGUSR1)
	go func() {
		<-poweroff
		// The boot ends: every process but this one dies at once.
		_ = syscall.Kill(-1, syscall.SIGKILL)
	}()
	child, err := os.StartProcess(bin, argv, &os.ProcAttr{Env: os.Environ(), Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		return 0, err
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait: %w", err)
		}
		if pid != child.Pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
}

// systemctl is the test host's systemctl: only `reboot` (what the agent's
// default reboot command and bootc's --apply run).
func systemctl(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "reboot" {
		fmt.Fprintf(stderr, "systemctl %s: the ostree test host's systemctl only knows 'reboot'\n", strings.Join(args, " "))
		return 1
	}
	return powerOff(stderr)
}

// powerOff ends the boot: it records that a reboot was asked for and has
// the host's init kill every process, this one included.
func powerOff(stderr io.Writer) int {
	cmdline, err := os.ReadFile("/proc/1/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte("\x00ostreehost\x00boot\x00")) {
		fmt.Fprintln(stderr, "reboot: refusing: this is not a booted ostree test host (pid 1 is not its init)")
		return 1
	}
	marker := filepath.Join("/run", RebootMarker)
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		fmt.Fprintf(stderr, "reboot: %v\n", err)
		return 1
	}
	if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		fmt.Fprintf(stderr, "reboot: %v\n", err)
		return 1
	}
	if err := syscall.Kill(1, syscall.SIGUSR1); err != nil {
		fmt.Fprintf(stderr, "reboot: %v\n", err)
		return 1
	}
	time.Sleep(time.Minute)
	fmt.Fprintln(stderr, "reboot: the host did not go down")
	return 1
}
