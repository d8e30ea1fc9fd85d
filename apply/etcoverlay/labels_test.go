package etcoverlay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/faultpoint"
)

// mapLabels is an injected policy: path → label, and a default.
type mapLabels struct {
	byPath map[string]string
	def    string
}

func (m mapLabels) Label(p string) (string, error) {
	if l, ok := m.byPath[p]; ok {
		return l, nil
	}
	return m.def, nil
}

const (
	etcT   = "system_u:object_r:etc_t:s0"
	sshdT  = "system_u:object_r:sshd_key_t:s0"
	adminT = "unconfined_u:object_r:admin_home_t:s0"
)

// requireXattrs skips unless the test filesystem keeps security.selinux
// (it does on ext4 and tmpfs for root, even with SELinux disabled).
func requireXattrs(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "xattr-probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	if err := unix.Setxattr(p, "security.selinux", []byte(etcT), 0); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the test filesystem does not keep security.selinux xattrs (root needed): %v", err)
		}
		t.Skipf("the test filesystem does not keep security.selinux xattrs (run as root on ext4 or tmpfs): %v", err)
	}
}

func xattrLabel(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, "security.selinux", buf)
	if errors.Is(err, unix.ENODATA) {
		return ""
	}
	if err != nil {
		t.Fatalf("read label of %s: %v", p, err)
	}
	return strings.TrimSuffix(string(buf[:n]), "\x00")
}

func newLabelledFixture(t *testing.T, labels LabelSource) *fixture {
	t.Helper()
	f := newFixture(t)
	requireXattrs(t, f.root)
	w, err := New(f.root, f.state, WithSystemctl(f.w.systemctl...), WithBootIDFile(f.bootIDFile), WithLabels(labels))
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	return f
}

// New and replaced files get the policy's label for their final path on
// the temporary file, before the rename: the file is never visible with
// another label, and an admin's label on the replaced file is not kept.
func TestLabelsSetBeforeRename(t *testing.T) {
	policy := mapLabels{byPath: map[string]string{"/etc/ssh/ssh_host_ed25519_key": sshdT}, def: etcT}
	f := newLabelledFixture(t, policy)
	f.put(t, "/etc/chrony.conf", "old\n", 0o644)
	if err := unix.Setxattr(f.abs("/etc/chrony.conf"), "security.selinux", []byte(adminT), 0); err != nil {
		t.Fatal(err)
	}

	var atRename []string
	faultpoint.Arm(func(step string) {
		if step != "temp-synced" {
			return
		}
		// The temporary file is complete and about to be renamed.
		for _, tmp := range tempFilesUnder(t, f.root) {
			atRename = append(atRename, filepath.Base(filepath.Dir(tmp))+" "+xattrLabel(t, tmp))
		}
	})
	t.Cleanup(func() { faultpoint.Arm(nil) })
	f.pass(t, []hostspec.EtcFile{
		etcFile("/etc/chrony.conf", "new\n"),
		etcFile("/etc/ssh/ssh_host_ed25519_key", "key\n", mode(0o600)),
	})
	faultpoint.Arm(nil)
	equalStrings(t, "labels of the temporary files at rename", atRename, []string{"etc " + etcT, "ssh " + sshdT})
	if got := xattrLabel(t, f.abs("/etc/chrony.conf")); got != etcT {
		t.Fatalf("replaced file label = %q, want the policy's %q (not the admin's)", got, etcT)
	}
	if got := xattrLabel(t, f.abs("/etc/ssh/ssh_host_ed25519_key")); got != sshdT {
		t.Fatalf("new file label = %q, want %q", got, sshdT)
	}
	if p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/chrony.conf", "new\n"), etcFile("/etc/ssh/ssh_host_ed25519_key", "key\n", mode(0o600))}); !p.NoOp() {
		t.Fatalf("a converged labelled tree plans changes: %v", changeSummary(p))
	}
}

// A managed file relabelled behind bootsync's back is drift, corrected by
// an atomic rewrite with the policy's label.
func TestWrongLabelIsDrift(t *testing.T) {
	f := newLabelledFixture(t, mapLabels{def: etcT})
	files := []hostspec.EtcFile{etcFile("/etc/motd", "hello\n")}
	f.pass(t, files)
	if err := unix.Setxattr(f.abs("/etc/motd"), "security.selinux", []byte(adminT), 0); err != nil {
		t.Fatal(err)
	}
	p := f.plan(t, files)
	if len(p.Drift) != 1 || p.Drift[0].Kind != DriftLabel || p.Drift[0].GotLabel != adminT || p.Drift[0].WantLabel != etcT || !p.Drift[0].Corrected {
		t.Fatalf("drift = %+v, want one corrected label drift %s → %s", p.Drift, adminT, etcT)
	}
	if len(p.Changes) != 1 || !strings.Contains(p.Changes[0].Reason, "SELinux label "+adminT+" → "+etcT) {
		t.Fatalf("changes = %v", changeSummary(p))
	}
	res, err := f.w.Apply(context.Background(), p)
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("apply: %v", err)
	}
	if got := xattrLabel(t, f.abs("/etc/motd")); got != etcT || f.read(t, "/etc/motd") != "hello\n" {
		t.Fatalf("after the correction: label %q, content %q", got, f.read(t, "/etc/motd"))
	}
}

// SELinux off (no label source): nothing is labelled and labels are not
// compared.
func TestNoLabelsWhenSELinuxIsOff(t *testing.T) {
	f := newFixture(t)
	requireXattrs(t, f.root)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/motd", "hello\n")})
	if got := xattrLabel(t, f.abs("/etc/motd")); got != "" {
		t.Fatalf("label %q set with SELinux off", got)
	}
	if err := unix.Setxattr(f.abs("/etc/motd"), "security.selinux", []byte(adminT), 0); err != nil {
		t.Fatal(err)
	}
	if p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/motd", "hello\n")}); !p.NoOp() || len(p.Drift) != 0 {
		t.Fatalf("with SELinux off a label difference planned %v, drift %v", changeSummary(p), p.Drift)
	}
}

func TestFileContextsLookup(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/selinux/targeted/contexts/files")
	writeHostFile(t, filepath.Join(root, "etc/selinux/config"), "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n", 0o644)
	writeHostFile(t, filepath.Join(dir, "file_contexts"), `
/etc(/.*)?                  system_u:object_r:etc_t:s0
/etc/ssh/ssh_host.*_key     --  system_u:object_r:sshd_key_t:s0
/etc/ssh/sshd_config.d(/.*)?    system_u:object_r:etc_t:s0
/etc/hosts\.deny            --  system_u:object_r:net_conf_t:s0
/etc/hosts\.deny            -d  system_u:object_r:var_t:s0
/etc/NetworkManager(/.*)?   system_u:object_r:NetworkManager_etc_t:s0
/etc/NetworkManager/system-connections(/.*)?  system_u:object_r:NetworkManager_etc_rw_t:s0
/etc/resolv\.conf.*         --  system_u:object_r:net_conf_t:s0
/etc/resolv.conf            --  system_u:object_r:etc_runtime_t:s0
/etc/mtab                   <<none>>
/usr/lib/systemd/system(/.*)?   system_u:object_r:systemd_unit_file_t:s0
`, 0o644)
	writeHostFile(t, filepath.Join(dir, "file_contexts.local"), "/etc/myapp\\.conf  system_u:object_r:httpd_config_t:s0\n", 0o644)
	writeHostFile(t, filepath.Join(dir, "file_contexts.subs_dist"), "/etc/systemd/system /usr/lib/systemd/system\n", 0o644)
	fc, err := LoadFileContexts(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/etc/chrony.conf":                                         "system_u:object_r:etc_t:s0",
		"/etc/ssh/ssh_host_ed25519_key":                            "system_u:object_r:sshd_key_t:s0",
		"/etc/ssh/sshd_config.d/50-bootsync.conf":                  "system_u:object_r:etc_t:s0",
		"/etc/hosts.deny":                                          "system_u:object_r:net_conf_t:s0",              // the "-d" entry is for directories
		"/etc/NetworkManager/system-connections/eth0.nmconnection": "system_u:object_r:NetworkManager_etc_rw_t:s0", // last match wins
		"/etc/resolv.conf":                                         "system_u:object_r:etc_runtime_t:s0",           // exact entries win
		"/etc/myapp.conf":                                          "system_u:object_r:httpd_config_t:s0",          // file_contexts.local
		"/etc/systemd/system/sshd.service.d/10-restart.conf":       "system_u:object_r:systemd_unit_file_t:s0",     // subs_dist
		"/etc/mtab": "",
	} {
		got, err := fc.Label(path)
		if err != nil || got != want {
			t.Errorf("Label(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := fc.Label("/opt/x"); err == nil {
		t.Error("a path without any entry has a label")
	}
	writeHostFile(t, filepath.Join(dir, "file_contexts.local"), "/etc/bad(  system_u:object_r:etc_t:s0\n", 0o644)
	if _, err := LoadFileContexts(root); err == nil || !strings.Contains(err.Error(), "file_contexts.local:1:") {
		t.Fatalf("an entry Go cannot compile: %v, want an error naming file and line", err)
	}
}
