// Package ostreehost is a second kind of test host for bootsync, beside
// the bootc simulator (test/bootcsim): a bootc stand-in over a real ostree
// sysroot in a temporary directory, where libostree itself does the A/B
// deployments, the /etc three-way merge, the shared /var, staging,
// finalization and rollback.
//
// # What is real
//
//   - The sysroot: `ostree admin init-fs` and `os-init` in a directory, the
//     sysroot's repository, BLS entries under boot/loader, deployments
//     under ostree/deploy/<stateroot>/deploy (Debian's ostree 2022.7).
//   - Image import like bootc's: the image is pulled by digest from the
//     registry, its layers applied in order with OCI whiteouts
//     (go-containerregistry's mutate.Extract), /etc moved to /usr/etc,
//     committed into the sysroot's repository with the manifest digest,
//     manifest and config in the commit metadata (ostree-ext's keys), under
//     a ref ostree/container/image/<image>. A digest already in the
//     repository is not downloaded again (only its manifest is fetched).
//     Images no deployment uses are pruned after staging, as bootc does.
//   - Booting: each command of the host runs as the child of an init that
//     is pid 1 of new mount and pid namespaces, chrooted into the BLS
//     default deployment with the sysroot on /sysroot, /boot, the
//     stateroot's /var and a persistent /run bound in, as
//     ostree-prepare-root would set it up; libostree then reports that
//     deployment as booted. The agent under test runs there as /usr/bin/
//     bootsync and writes the deployment's real /etc.
//   - bootc's verbs as the stand-in (cmd/bootc, /usr/bin/bootc in the
//     host): `switch` and `upgrade` (with --download-only and
//     --from-downloaded) stage with `ostree admin deploy --stage`
//     (download-only is ostree 2022.7's finalization lock file
//     /run/ostree/staged-deployment-locked); `rollback` reorders the
//     deployments with libostree's write_deployments (python3-gi), exactly
//     as bootc's deploy::rollback does, dropping a staged deployment and
//     never deploying again; `status --format=json --format-version=1` is
//     computed from libostree's deployments in bootc's schema (status.rs's
//     rules for staged, rollback, rollbackQueued and otherDeployments) and
//     the harness validates every status against bootc's JSON Schema.
//   - Shutdown runs `ostree admin finalize-staged` (what
//     ostree-finalize-staged.service does) in the ending boot; the next
//     boot is the BLS entry with the highest version, with an empty /run
//     and a new kernel boot ID.
//
// # What is faked
//
// The kernel, initramfs and bootloader (a boot is a chroot; kernel
// arguments land in the BLS entries but never take effect), soft reboots
// (never offered: status says softRebootCapable false), boot counting,
// SELinux, systemd (the host's systemctl knows only `reboot`, which ends
// the boot: the init kills every process of it, like the shutdown does,
// and the harness then finalizes and boots again), registry
// configuration (plain-HTTP registries come from
// OSTREEHOST_INSECURE_REGISTRIES, credentials are not read), signature
// checks by containers/image (only bootc's refusal of an
// insecureAcceptAnything default policy is modelled), `upgrade --check`,
// and the host's /usr: the image's /usr is overlaid on the test
// machine's, so that sh, python3 and ostree exist inside.
//
// It needs root, Debian's ostree, gir1.2-ostree-1.0 and python3-gi
// (/usr/bin/python3). libostree is reached through python3-gi rather than
// cgo so that the module builds and vets without libostree-dev and the
// stand-in is a static binary.
package ostreehost

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/bootsync/bootsync/test/ostreehost/internal/standin"
)

// Call is one bootc call the host received (its call log).
type Call = standin.Call

// Require skips the test unless it can run here (root, ostree, the
// GObject bindings); under CI=true it fails instead.
func Require(t testing.TB) {
	t.Helper()
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "root (ostree deploys chown files and the host boots in mount and pid namespaces)"
	default:
		if _, err := exec.LookPath("ostree"); err != nil {
			missing = "the ostree command (Debian package ostree)"
		} else if out, err := exec.Command(standin.Python, "-c", `import gi; gi.require_version("OSTree", "1.0"); from gi.repository import OSTree`).CombinedOutput(); err != nil {
			missing = "libostree's GObject bindings for " + standin.Python + " (Debian packages gir1.2-ostree-1.0, python3-gi): " + string(out)
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("the ostree test host needs %s", missing)
	}
	t.Skipf("skipping: the ostree test host needs %s", missing)
}

// Tools are the binaries installed into the host's /usr/bin: the bootc
// stand-in (also as systemctl) and the agent under test.
type Tools struct {
	Dir string // holds bin/
}

// Bin is the path of a tool on the test machine.
func (t *Tools) Bin(name string) string { return filepath.Join(t.Dir, "bin", name) }

var whiteout sync.Mutex

// hideHostEtc puts an overlayfs whiteout named etc into the tools layer,
// so that the test machine's /usr/etc (the lowest layer of the host's
// /usr) does not show through the image's. It needs root.
func (t *Tools) hideHostEtc() error {
	whiteout.Lock()
	defer whiteout.Unlock()
	p := filepath.Join(t.Dir, "etc")
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := syscall.Mknod(p, syscall.S_IFCHR, 0); err != nil {
		return fmt.Errorf("overlay whiteout %s: %w", p, err)
	}
	return nil
}

var toolsBuild struct {
	once  sync.Once
	tools *Tools
	err   error
}

// BuildTools builds, once per test binary, the bootc stand-in and the
// bootsync agent as static binaries (they run inside the host's chroot)
// into a directory of dir. Remove dir from TestMain when done.
func BuildTools(dir string) (*Tools, error) {
	toolsBuild.once.Do(func() {
		t := &Tools{Dir: filepath.Join(dir, "ostreehost-tools")}
		bin := filepath.Join(t.Dir, "bin")
		for pkg, out := range map[string]string{
			"github.com/bootsync/bootsync/test/ostreehost/cmd/bootc": "bootc",
			"github.com/bootsync/bootsync/cmd/bootsync":              "bootsync",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(bin, out), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				toolsBuild.err = fmt.Errorf("build %s: %w\n%s", pkg, err, b)
				return
			}
		}
		if err := os.Symlink("bootc", filepath.Join(bin, "systemctl")); err != nil {
			toolsBuild.err = err
			return
		}
		toolsBuild.tools = t
	})
	return toolsBuild.tools, toolsBuild.err
}
