package ostreehost_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/ostreehost"
	"github.com/bootsync/bootsync/test/registryserver"
)

// view is what the simulator and the ostree host must agree on after
// each step: the deployments bootc reports and the live /etc.
type view struct {
	Booted, Staged, Rollback string
	Serials                  [3]uint32 // booted, staged, rollback deploySerial
	Others                   []string
	RollbackQueued           bool
	BootOrder                bootc.BootOrder
	DownloadOnly             bool
	Spec                     string
	Etc                      map[string]string
}

func viewOf(h *bootc.Host, etcDir string, names map[string]string) (view, error) {
	v := view{
		Booted: names[h.BootedDigest()], Staged: names[h.StagedDigest()], Rollback: names[h.RollbackDigest()],
		RollbackQueued: h.Status.RollbackQueued, BootOrder: h.Spec.BootOrder, Etc: map[string]string{},
	}
	for _, o := range h.Status.OtherDeployments {
		v.Others = append(v.Others, names[o.Digest()])
	}
	if s := h.Status.Staged; s != nil {
		v.DownloadOnly = s.DownloadOnly
	}
	for i, e := range []*bootc.BootEntry{h.Status.Booted, h.Status.Staged, h.Status.Rollback} {
		if e != nil && e.Ostree != nil {
			v.Serials[i] = e.Ostree.DeploySerial
		}
	}
	if h.Spec.Image != nil {
		v.Spec = names[digestOf(h.Spec.Image.Image)]
	}
	err := filepath.WalkDir(etcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(etcDir, p)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			v.Etc[rel] = fmt.Sprintf("%s uid %d %q", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid, b)
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			v.Etc[rel] = "-> " + l
			return err
		}
		return nil
	})
	return v, err
}

// hosts is one simulated and one ostree host driven in lockstep.
type hosts struct {
	t     *testing.T
	sim   *bootcsim.Host
	ost   *ostreehost.Host
	names map[string]string // digest → image name
}

func (h *hosts) bootc(args ...string) {
	h.t.Helper()
	s := h.sim.Run(h.t, args...)
	o := h.ost.Exec(nil, append([]string{"bootc"}, args...)...)
	if (s.ExitCode == 0) != (o.Exit == 0) {
		h.t.Errorf("bootc %s: simulator exit %d (%s), ostree exit %d (%s)", strings.Join(args, " "), s.ExitCode, s.Stderr, o.Exit, o.Stderr)
	}
}

func (h *hosts) reboot() {
	h.t.Helper()
	h.sim.Reboot(h.t)
	h.ost.Reboot()
}

// compare reports every difference between the two hosts after step.
func (h *hosts) compare(step string) {
	h.t.Helper()
	sv, err := viewOf(h.sim.Status(h.t), filepath.Join(h.sim.Root, "etc"), h.names)
	if err != nil {
		h.t.Fatal(err)
	}
	ov, err := viewOf(h.ost.Status(), filepath.Join(h.ost.BootedDir(), "etc"), h.names)
	if err != nil {
		h.t.Fatal(err)
	}
	if !reflect.DeepEqual(sv, ov) {
		h.t.Errorf("after %s the simulator and ostree disagree:\nsimulator: %+v\nostree:    %+v", step, sv, ov)
	}
}

// each runs fn on the live /etc of both hosts.
func (h *hosts) each(fn func(etc string) error) {
	h.t.Helper()
	for _, dir := range []string{filepath.Join(h.sim.Root, "etc"), filepath.Join(h.ost.BootedDir(), "etc")} {
		if err := fn(dir); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *hosts) edit(rel string, content *string) {
	h.t.Helper()
	for _, dir := range []string{filepath.Join(h.sim.Root, "etc"), filepath.Join(h.ost.BootedDir(), "etc")} {
		p := filepath.Join(dir, rel)
		if content == nil {
			if err := os.Remove(p); err != nil {
				h.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(*content), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// The simulator models bootc on ostree; the stand-in runs the real thing.
// The same bootc calls, reboots and /etc edits on both must leave the same
// deployments and the same /etc. Each difference this found is listed in
// docs/ostree-host.md with how the simulator was fixed.
func TestBootcsimAgreesWithTheStandIn(t *testing.T) {
	ostreehost.Require(t)
	reg := registryserver.New(t)
	base := map[string]string{"etc/removable.conf": "shipped by the base layer\n"}
	img := func(tag string, etc map[string]string) string {
		return push(t, reg, tag, buildImage(t, ostreehost.ImageOptions{Base: base, Version: tag, Etc: etc}))
	}
	a0 := img("a0", nil)
	v1 := img("v1", map[string]string{"sshd_config": "Port 22\n", "motd": "v1\n", "issue": "FakeOS 1\n"})
	v2 := img("v2", map[string]string{"sshd_config": "Port 22\nX11Forwarding no\n", "motd": "v2\n", "issue": "FakeOS 1\n", "new.conf": "v2\n"})
	v3 := img("v3", map[string]string{"motd": "v3\n"})
	h := &hosts{t: t, names: map[string]string{"": ""}}
	for name, ref := range map[string]string{"a0": a0, "v1": v1, "v2": v2, "v3": v3} {
		h.names[digestOf(ref)] = name
	}
	h.sim = bootcsim.NewHost(t, bootcsim.Options{Image: a0, Digest: digestOf(a0), InsecureRegistries: []string{reg.Addr()}})
	h.ost = ostreehost.New(t, ostreehost.Options{Tools: tools, Image: a0, Insecure: []string{reg.Addr()}})
	// Both hosts boot v1 through a staged update, so both know its /etc.
	h.bootc("switch", v1)
	h.reboot()
	h.compare("booting v1")

	local := "Port 2222\n"
	h.edit("sshd_config", &local)
	h.edit("removable.conf", nil)
	h.edit("local.conf", &local)
	h.each(func(etc string) error { return os.Chmod(filepath.Join(etc, "motd"), 0o600) })
	h.each(func(etc string) error { return os.Chown(filepath.Join(etc, "issue"), 1000, 1000) })
	steps := []struct {
		name string
		do   func()
	}{
		{"switch v2", func() { h.bootc("switch", v2) }},
		{"reboot into v2", h.reboot},
		{"rollback", func() { h.bootc("rollback") }},
		{"switch v3 with the rollback queued", func() { h.bootc("switch", v3) }},
		{"reboot into v3", h.reboot},
		{"rollback", func() { h.bootc("rollback") }},
		{"rollback again (revert)", func() { h.bootc("rollback") }},
		{"switch v1 (download-only)", func() { h.bootc("switch", v1); h.bootc("upgrade", "--download-only") }},
		{"reboot with a download-only staged deployment", h.reboot},
		{"switch v1 and roll back (drops the staged one)", func() { h.bootc("switch", v1); h.bootc("rollback") }},
		{"reboot into the rollback", h.reboot},
		{"switch v2 then v3 (replaces the staged one)", func() { h.bootc("switch", v2); h.bootc("switch", v3) }},
		{"upgrade --download-only, then --from-downloaded", func() {
			h.bootc("upgrade", "--download-only")
			h.bootc("upgrade", "--from-downloaded")
		}},
		{"reboot into v3", h.reboot},
		{"switch to the rollback's image (a second deployment of it)", func() { h.bootc("switch", v2) }},
		{"reboot", h.reboot},
		{"upgrade with nothing new", func() { h.bootc("upgrade") }},
	}
	for i, s := range steps {
		s.do()
		h.compare(fmt.Sprintf("step %d (%s)", i+1, s.name))
	}
}
