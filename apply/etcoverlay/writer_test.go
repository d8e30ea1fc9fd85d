package etcoverlay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/hostspec"
)

func TestCreateWritesContentModeOwnerAndParents(t *testing.T) {
	f := newFixture(t)
	files := []hostspec.EtcFile{
		etcFile("/etc/chrony.conf", "server ntp.example.com iburst\n"),
		etcFile("/etc/chrony.keys", "1 SHA256 HEX:00ff\n", mode(0o640), owner("chrony", "chrony")),
		// An image account (nss-altfiles) and a numeric id.
		etcFile("/etc/ssh/ssh_host_ed25519_key", "KEY\n", mode(0o640), owner("root", "ssh_keys")),
		etcFile("/etc/app/deep/dir/app.conf", "a=1\n", owner("1234", "5678")),
		// Set-user-ID must survive the chown (which clears it).
		etcFile("/etc/helper", "#!/bin/sh\n", mode(0o4750), owner("sshd", "sshd")),
	}
	p, _ := f.pass(t, files)
	equalStrings(t, "changes", changeSummary(p), []string{
		"create /etc/app/deep/dir/app.conf", "create /etc/chrony.conf", "create /etc/chrony.keys",
		"create /etc/helper", "create /etc/ssh/ssh_host_ed25519_key",
	})

	for _, tc := range []struct {
		path     string
		content  string
		mode     uint32
		uid, gid int
	}{
		{"/etc/chrony.conf", "server ntp.example.com iburst\n", 0o644, 0, 0},
		{"/etc/chrony.keys", "1 SHA256 HEX:00ff\n", 0o640, 994, 992},
		{"/etc/ssh/ssh_host_ed25519_key", "KEY\n", 0o640, 0, 101},
		{"/etc/app/deep/dir/app.conf", "a=1\n", 0o644, 1234, 5678},
		{"/etc/helper", "#!/bin/sh\n", 0o4750, 74, 74},
	} {
		if got := f.read(t, tc.path); got != tc.content {
			t.Errorf("%s content = %q, want %q", tc.path, got, tc.content)
		}
		m, uid, gid := f.stat(t, tc.path)
		if m != tc.mode || uid != tc.uid || gid != tc.gid {
			t.Errorf("%s = %04o %d:%d, want %04o %d:%d", tc.path, m, uid, gid, tc.mode, tc.uid, tc.gid)
		}
	}
	// Directories bootsync creates are 0755 root:root whatever the umask.
	for _, d := range []string{"/etc/app", "/etc/app/deep", "/etc/app/deep/dir", "/etc/ssh"} {
		if m, uid, gid := f.stat(t, d); m != 0o755 || uid != 0 || gid != 0 {
			t.Errorf("directory %s = %04o %d:%d, want 0755 0:0", d, m, uid, gid)
		}
	}
	equalStrings(t, "managed", managedPaths(t, f.w), []string{
		"/etc/app/deep/dir/app.conf", "/etc/chrony.conf", "/etc/chrony.keys", "/etc/helper", "/etc/ssh/ssh_host_ed25519_key",
	})
	if got := tempFilesUnder(t, f.root); len(got) != 0 {
		t.Errorf("temporary files left: %v", got)
	}
	if p := f.plan(t, files); !p.NoOp() {
		t.Errorf("second plan is not a no-op: changes %v records %d", changeSummary(p), len(p.records))
	}
}

func TestManagedRecordsWhatWasWritten(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/chrony.keys", "k\n", mode(0o640), owner("chrony", "chrony"))})
	m, err := f.w.Managed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := ManagedFile{Path: "/etc/chrony.keys", SHA256: shaOf("k\n"), Mode: 0o640, Owner: "chrony", Group: "chrony",
		UID: 994, GID: 992, Source: "fleet.yaml:7"}
	if len(m) != 1 || m[0] != want {
		t.Fatalf("Managed() = %+v, want [%+v]", m, want)
	}
	if _, err := os.Stat(filepath.Join(f.state, ManifestFile)); err != nil {
		t.Fatalf("manifest not in the state directory: %v", err)
	}
}

func TestUpdateContentAndMetadata(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "one\n"), etcFile("/etc/b.conf", "same\n")})

	p, _ := f.pass(t, []hostspec.EtcFile{
		etcFile("/etc/a.conf", "two\n"),
		etcFile("/etc/b.conf", "same\n", mode(0o600), owner("chrony", "root")),
	})
	equalStrings(t, "changes", changeSummary(p), []string{"update /etc/a.conf", "update /etc/b.conf"})
	a, b := p.Changes[0], p.Changes[1]
	if !a.ContentChanged() || a.MetadataChanged() || a.Reason != "content differs" {
		t.Errorf("a.conf change: content %v metadata %v reason %q", a.ContentChanged(), a.MetadataChanged(), a.Reason)
	}
	if before, after, ok := a.Text(); !ok || before != "one\n" || after != "two\n" {
		t.Errorf("a.conf diff sides = %q, %q, %v", before, after, ok)
	}
	if b.ContentChanged() || !b.MetadataChanged() || b.Reason != "mode 0644 → 0600, owner 0 → 994" {
		t.Errorf("b.conf change: content %v metadata %v reason %q", b.ContentChanged(), b.MetadataChanged(), b.Reason)
	}
	if got := f.read(t, "/etc/a.conf"); got != "two\n" {
		t.Errorf("a.conf = %q", got)
	}
	if m, uid, _ := f.stat(t, "/etc/b.conf"); m != 0o600 || uid != 994 {
		t.Errorf("b.conf = %04o uid %d, want 0600 uid 994", m, uid)
	}
	if len(p.Drift) != 0 {
		t.Errorf("a spec change is not drift: %v", driftSummary(p))
	}
}

func TestLargeFilesAreComparedByDigestOnly(t *testing.T) {
	f := newFixture(t)
	w, err := New(f.root, f.state, WithDiffLimit(16), WithBootIDFile(f.bootIDFile))
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "/etc/big.conf", strings.Repeat("x", 100), 0o644)
	p, err := w.Plan(context.Background(), []hostspec.EtcFile{etcFile("/etc/big.conf", strings.Repeat("y", 100))})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Changes[0]
	if !c.ContentOmitted || c.BeforeContent != nil || c.AfterContent != nil {
		t.Fatalf("large file carries content: omitted %v, before %d bytes, after %d bytes", c.ContentOmitted, len(c.BeforeContent), len(c.AfterContent))
	}
	if _, _, ok := c.Text(); ok {
		t.Fatal("Text() offers a diff of an omitted file")
	}
	if c.Before.SHA256 != shaOf(strings.Repeat("x", 100)) || c.After.SHA256 != shaOf(strings.Repeat("y", 100)) || c.Before.Size != 100 {
		t.Fatalf("digests not reported: %+v → %+v", c.Before, c.After)
	}
	if _, err := w.Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if got := f.read(t, "/etc/big.conf"); got != strings.Repeat("y", 100) {
		t.Fatalf("big.conf not written in full: %q", got)
	}
}

func TestAbsentRemovesFileOrLink(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(t.TempDir(), "target")
	writeHostFile(t, outside, "keep me\n", 0o644)
	f.put(t, "/etc/unwanted.conf", "from the image\n", 0o644)
	if err := os.Symlink(outside, f.abs("/etc/link.conf")); err != nil {
		t.Fatal(err)
	}
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/managed.conf", "m\n")})

	p, _ := f.pass(t, []hostspec.EtcFile{
		absent("/etc/unwanted.conf"), absent("/etc/link.conf"), absent("/etc/managed.conf"), absent("/etc/never-was.conf"),
	})
	equalStrings(t, "changes", changeSummary(p), []string{"delete /etc/link.conf", "delete /etc/managed.conf", "delete /etc/unwanted.conf"})
	for _, hp := range []string{"/etc/unwanted.conf", "/etc/link.conf", "/etc/managed.conf"} {
		if f.exists(t, hp) {
			t.Errorf("%s still exists", hp)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep me\n" {
		t.Errorf("the symlink's target was touched: %q, %v", b, err)
	}
	equalStrings(t, "managed", managedPaths(t, f.w), nil)
}

func TestPruneRemovesFileThatLeftTheSpec(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/keep.conf", "k\n"), etcFile("/etc/old.d/old.conf", "o\n")})

	p, _ := f.pass(t, []hostspec.EtcFile{etcFile("/etc/keep.conf", "k\n")})
	equalStrings(t, "changes", changeSummary(p), []string{"delete /etc/old.d/old.conf"})
	if !p.Changes[0].Prune || p.Changes[0].Reason != "left the spec" {
		t.Errorf("prune change = %+v", p.Changes[0])
	}
	if f.exists(t, "/etc/old.d/old.conf") {
		t.Error("pruned file still exists")
	}
	if f.read(t, "/etc/keep.conf") != "k\n" {
		t.Error("kept file changed")
	}
	equalStrings(t, "managed", managedPaths(t, f.w), []string{"/etc/keep.conf"})
}

func TestPruneLeavesLocallyModifiedFileAndReportsDrift(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/tuned.conf", "profile=a\n")})
	f.put(t, "/etc/tuned.conf", "profile=a\n# hand-tuned on this host\n", 0o644)

	p, _ := f.pass(t, nil)
	equalStrings(t, "changes", changeSummary(p), nil)
	equalStrings(t, "drift", driftSummary(p), []string{"modified /etc/tuned.conf (left alone)"})
	d := p.Drift[0]
	if d.Want.SHA256 != shaOf("profile=a\n") || d.Got.SHA256 != shaOf("profile=a\n# hand-tuned on this host\n") {
		t.Errorf("drift digests: want %s got %s", d.Want.SHA256, d.Got.SHA256)
	}
	if got := f.read(t, "/etc/tuned.conf"); got != "profile=a\n# hand-tuned on this host\n" {
		t.Fatalf("local edit lost: %q", got)
	}
	// Still reported on the next pass, until someone resolves it.
	equalStrings(t, "drift on the next pass", driftSummary(f.plan(t, nil)), []string{"modified /etc/tuned.conf (left alone)"})
	equalStrings(t, "managed", managedPaths(t, f.w), []string{"/etc/tuned.conf"})

	if err := os.Remove(f.abs("/etc/tuned.conf")); err != nil {
		t.Fatal(err)
	}
	p, _ = f.pass(t, nil)
	if len(p.Drift) != 0 || len(p.Changes) != 0 {
		t.Errorf("after the operator removed it: drift %v changes %v", driftSummary(p), changeSummary(p))
	}
	equalStrings(t, "managed", managedPaths(t, f.w), nil)
}

func TestPrunePutsBackTheFileBootsyncReplaced(t *testing.T) {
	f := newFixture(t)
	f.put(t, "/etc/ssh/sshd_config", "# as the image ships it\n", 0o600)
	f.put(t, "/usr/etc/ssh/sshd_config", "# as the image ships it\n", 0o600)

	p, _ := f.pass(t, []hostspec.EtcFile{etcFile("/etc/ssh/sshd_config", "PermitRootLogin no\n", restart("sshd.service"))})
	equalStrings(t, "changes", changeSummary(p), []string{"update /etc/ssh/sshd_config"})
	if !strings.Contains(p.Changes[0].Reason, "takes the file over") {
		t.Errorf("reason does not say bootsync takes the file over: %q", p.Changes[0].Reason)
	}
	equalStrings(t, "image shipped", p.ImageShipped, []string{"/etc/ssh/sshd_config"})
	if got := f.read(t, "/etc/ssh/sshd_config"); got != "PermitRootLogin no\n" {
		t.Fatalf("not written: %q", got)
	}
	f.calls(t)

	// Removing it from the spec must not delete sshd's configuration.
	p, _ = f.pass(t, nil)
	equalStrings(t, "changes", changeSummary(p), []string{"restore /etc/ssh/sshd_config"})
	if got := f.read(t, "/etc/ssh/sshd_config"); got != "# as the image ships it\n" {
		t.Fatalf("original not put back: %q", got)
	}
	if m, uid, gid := f.stat(t, "/etc/ssh/sshd_config"); m != 0o600 || uid != 0 || gid != 0 {
		t.Errorf("original metadata not put back: %04o %d:%d", m, uid, gid)
	}
	equalStrings(t, "systemctl", f.calls(t), []string{"restart sshd.service"})
	equalStrings(t, "managed", managedPaths(t, f.w), nil)
	// The original stays kept while a rollback may bring bootsync's
	// version back (TestPutBackOriginalAgainAfterARollback), and only it.
	if names, _ := readDirNames(filepath.Join(f.state, OriginalsDir)); !slices.Equal(names, []string{shaOf("# as the image ships it\n")}) {
		t.Errorf("kept originals %v, want exactly the put-back original", names)
	}
}

func TestDriftInManagedFilesIsReportedAndCorrected(t *testing.T) {
	f := newFixture(t)
	files := []hostspec.EtcFile{
		etcFile("/etc/edited.conf", "e\n"),
		etcFile("/etc/chmodded.conf", "c\n", mode(0o600)),
		etcFile("/etc/removed.conf", "r\n"),
		etcFile("/etc/untouched.conf", "u\n"),
	}
	f.pass(t, files)
	f.put(t, "/etc/edited.conf", "e\nlocal line\n", 0o644)
	if err := os.Chmod(f.abs("/etc/chmodded.conf"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.abs("/etc/removed.conf")); err != nil {
		t.Fatal(err)
	}

	p, _ := f.pass(t, files)
	equalStrings(t, "drift", driftSummary(p), []string{"metadata /etc/chmodded.conf", "modified /etc/edited.conf", "missing /etc/removed.conf"})
	for _, d := range p.Drift {
		if d.Path == "/etc/edited.conf" && (d.Want.SHA256 != shaOf("e\n") || d.Got.SHA256 != shaOf("e\nlocal line\n")) {
			t.Errorf("edited drift digests: %+v", d)
		}
		if d.Path == "/etc/chmodded.conf" && (d.Want.Mode != 0o600 || d.Got.Mode != 0o666) {
			t.Errorf("chmod drift modes: %+v", d)
		}
	}
	equalStrings(t, "changes", changeSummary(p), []string{"update /etc/chmodded.conf", "update /etc/edited.conf", "create /etc/removed.conf"})
	if f.read(t, "/etc/edited.conf") != "e\n" || f.read(t, "/etc/removed.conf") != "r\n" {
		t.Error("drift not corrected")
	}
	if m, _, _ := f.stat(t, "/etc/chmodded.conf"); m != 0o600 {
		t.Errorf("mode drift not corrected: %04o", m)
	}
	if p := f.plan(t, files); len(p.Drift) != 0 || !p.NoOp() {
		t.Errorf("after correction: drift %v changes %v", driftSummary(p), changeSummary(p))
	}
}

// After `bootc rollback` the old deployment boots with its old /etc: files
// bootsync wrote later are back to earlier versions or gone. The plan must
// name exactly those, as reverted or missing, and nothing else.
func TestPlanAfterRollbackFindsExactlyWhatReverted(t *testing.T) {
	f := newFixture(t)
	v1 := []hostspec.EtcFile{etcFile("/etc/a.conf", "a1\n"), etcFile("/etc/b.conf", "b\n")}
	v2 := []hostspec.EtcFile{etcFile("/etc/a.conf", "a2\n"), etcFile("/etc/b.conf", "b\n"), etcFile("/etc/c.d/c.conf", "c\n")}
	f.pass(t, v1)
	f.pass(t, v2)
	// The rollback deployment's /etc, as it was when v1 was applied.
	f.put(t, "/etc/a.conf", "a1\n", 0o644)
	if err := os.RemoveAll(f.abs("/etc/c.d")); err != nil {
		t.Fatal(err)
	}

	p, _ := f.pass(t, v2)
	equalStrings(t, "drift", driftSummary(p), []string{"reverted /etc/a.conf", "missing /etc/c.d/c.conf"})
	equalStrings(t, "changes", changeSummary(p), []string{"update /etc/a.conf", "create /etc/c.d/c.conf"})
	if f.read(t, "/etc/a.conf") != "a2\n" || f.read(t, "/etc/c.d/c.conf") != "c\n" {
		t.Error("not re-applied")
	}
}

func TestSymlinkedParentIsRefused(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	f.put(t, "/etc/real/.keep", "", 0o644)
	if err := os.Symlink(outside, f.abs("/etc/evil")); err != nil {
		t.Fatal(err)
	}
	// A relative link deeper down, pointing out of the root.
	if err := os.Symlink("../../../"+filepath.Base(outside), f.abs("/etc/real/sub")); err != nil {
		t.Fatal(err)
	}
	files := []hostspec.EtcFile{
		etcFile("/etc/evil/authorized_keys", "ssh-ed25519 AAAA attacker\n"),
		etcFile("/etc/real/sub/x.conf", "x\n"),
		etcFile("/etc/ok.conf", "fine\n"),
	}
	p := f.plan(t, files)
	equalStrings(t, "problems", problemPaths(p), []string{"/etc/evil/authorized_keys", "/etc/real/sub/x.conf"})
	if msg := p.Problems[0].Error(); !strings.Contains(msg, "/etc/evil/authorized_keys") || !strings.Contains(msg, "/etc/evil is a symbolic link") {
		t.Errorf("problem does not name the path and the link: %s", msg)
	}
	equalStrings(t, "changes", changeSummary(p), []string{"create /etc/ok.conf"})

	res, err := f.w.Apply(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "/etc/evil/authorized_keys") || !strings.Contains(err.Error(), "/etc/real/sub/x.conf") {
		t.Fatalf("Apply error does not name the refused paths: %v", err)
	}
	if len(res.Applied) != 1 || f.read(t, "/etc/ok.conf") != "fine\n" {
		t.Error("the other files were not applied")
	}
	if names, _ := readDirNames(outside); len(names) != 0 {
		t.Fatalf("bootsync wrote outside the root: %v", names)
	}
}

// A symlink swapped in between Plan and Apply (a compromised host racing
// the agent) must not redirect the write either.
func TestParentSwappedForSymlinkAfterPlanIsRefused(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	f.put(t, "/etc/app/.keep", "", 0o644)
	p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/app/app.conf", "x\n")})
	if err := os.RemoveAll(f.abs("/etc/app")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, f.abs("/etc/app")); err != nil {
		t.Fatal(err)
	}
	_, err := f.w.Apply(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "write /etc/app/app.conf") || !strings.Contains(err.Error(), "/etc/app is a symbolic link") {
		t.Fatalf("Apply error = %v", err)
	}
	if names, _ := readDirNames(outside); len(names) != 0 {
		t.Fatalf("bootsync wrote through the symlink: %v", names)
	}
}

func TestNonRegularTargetIsRefused(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(t.TempDir(), "shadow")
	writeHostFile(t, outside, "secret\n", 0o600)
	if err := os.Symlink(outside, f.abs("/etc/link.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.abs("/etc/dir.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(f.abs("/etc/fifo.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []hostspec.EtcFile{etcFile("/etc/link.conf", "x\n"), etcFile("/etc/dir.conf", "x\n"), etcFile("/etc/fifo.conf", "x\n")}
	// The fifo must not make Plan hang: it is never opened.
	p := f.plan(t, files)
	equalStrings(t, "problems", problemPaths(p), []string{"/etc/dir.conf", "/etc/fifo.conf", "/etc/link.conf"})
	for _, pr := range p.Problems {
		want := map[string]string{
			"/etc/link.conf": "write /etc/link.conf: /etc/link.conf is a symbolic link",
			"/etc/dir.conf":  "write /etc/dir.conf: /etc/dir.conf is a directory",
			"/etc/fifo.conf": "write /etc/fifo.conf: /etc/fifo.conf is a special file",
		}[pr.Path]
		if !strings.HasPrefix(pr.Error(), want) {
			t.Errorf("problem = %q, want prefix %q", pr.Error(), want)
		}
	}
	equalStrings(t, "changes", changeSummary(p), nil)
	if _, err := f.w.Apply(context.Background(), p); err == nil {
		t.Fatal("Apply of a plan with refused paths returned no error")
	}
	if b, _ := os.ReadFile(outside); string(b) != "secret\n" {
		t.Fatalf("symlink target overwritten: %q", b)
	}
	if fi, err := os.Lstat(f.abs("/etc/link.conf")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the symlink was replaced")
	}
}

func TestImageShippedWarning(t *testing.T) {
	f := newFixture(t)
	f.put(t, "/usr/etc/chrony.conf", "pool 2.fedora.pool.ntp.org iburst\n", 0o644)
	p := f.plan(t, []hostspec.EtcFile{
		etcFile("/etc/chrony.conf", "server ntp.example.com\n"),
		etcFile("/etc/chrony.d/10-site.conf", "server ntp.example.com\n"),
	})
	equalStrings(t, "image shipped", p.ImageShipped, []string{"/etc/chrony.conf"})
}

func TestOnChangeRunsOnlyWhenTheFileChanged(t *testing.T) {
	f := newFixture(t)
	spec := func(chrony string, m uint32) []hostspec.EtcFile {
		return []hostspec.EtcFile{
			etcFile("/etc/chrony.conf", chrony, mode(m), restart("chronyd.service")),
			etcFile("/etc/chrony.d/site.conf", "x\n", restart("chronyd.service")),
			etcFile("/etc/nginx/nginx.conf", "events {}\n", reload("nginx.service")),
			etcFile("/etc/motd", "hi\n"),
		}
	}
	_, res := f.pass(t, spec("server a\n", 0o644))
	equalStrings(t, "first pass", f.calls(t), []string{"restart chronyd.service", "reload nginx.service"})
	if res.Actions.RebootRequired || res.Actions.DaemonReload {
		t.Errorf("actions = %+v", res.Actions)
	}

	p, res := f.pass(t, spec("server a\n", 0o644))
	if !p.NoOp() || !res.Actions.Empty() {
		t.Errorf("unchanged spec: no-op %v, actions %+v", p.NoOp(), res.Actions)
	}
	equalStrings(t, "unchanged spec", f.calls(t), nil)

	f.pass(t, spec("server b\n", 0o644))
	equalStrings(t, "content change", f.calls(t), []string{"restart chronyd.service"})

	f.pass(t, spec("server b\n", 0o640))
	equalStrings(t, "mode change", f.calls(t), []string{"restart chronyd.service"})
}

func TestUnitFileChangeReloadsSystemdFirst(t *testing.T) {
	f := newFixture(t)
	_, res := f.pass(t, []hostspec.EtcFile{
		etcFile("/etc/systemd/system/app.service.d/override.conf", "[Service]\nEnvironment=A=1\n", restart("app.service")),
	})
	if !res.Actions.DaemonReload {
		t.Error("no daemon-reload for a drop-in")
	}
	equalStrings(t, "systemctl", f.calls(t), []string{"daemon-reload", "restart app.service"})
}

func TestFailedRestartStaysOwedUntilItSucceeds(t *testing.T) {
	f := newFixture(t)
	writeHostFile(t, f.failFlag, "", 0o644)
	ctx := context.Background()
	files := []hostspec.EtcFile{
		etcFile("/etc/a.conf", "a\n", restart("broken-app.service")),
		etcFile("/etc/b.conf", "b\n", restart("good.service")),
	}
	p := f.plan(t, files)
	res, err := f.w.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	err = f.w.RunOnChange(ctx, res)
	if err == nil || !strings.Contains(err.Error(), "restart broken-app.service") ||
		!strings.Contains(err.Error(), "Job for broken-app.service failed because the control process exited with error code.") {
		t.Fatalf("RunOnChange error does not carry the unit and systemctl's stderr: %v", err)
	}
	equalStrings(t, "systemctl", f.calls(t), []string{"restart broken-app.service", "restart good.service"})

	// The next pass (no spec change) still owes the failed restart only.
	p = f.plan(t, files)
	equalStrings(t, "owed", p.Owed.Restart, []string{"broken-app.service"})
	if p.NoOp() {
		t.Error("a plan that owes a restart is a no-op")
	}
	if err := os.Remove(f.failFlag); err != nil {
		t.Fatal(err)
	}
	f.pass(t, files)
	equalStrings(t, "retry", f.calls(t), []string{"restart broken-app.service"})
	if p := f.plan(t, files); !p.NoOp() {
		t.Errorf("after the retry succeeded: owed %+v", p.Owed)
	}
}

func TestRebootRequiredUntilTheHostReboots(t *testing.T) {
	f := newFixture(t)
	files := []hostspec.EtcFile{etcFile("/etc/sysctl.d/90-net.conf", "net.core.somaxconn=4096\n", func(e *hostspec.EtcFile) {
		e.OnChange = &hostspec.OnChange{Reboot: true}
	})}
	_, res := f.pass(t, files)
	if !res.Actions.RebootRequired {
		t.Fatal("Apply does not report the reboot")
	}
	equalStrings(t, "systemctl", f.calls(t), nil)
	p := f.plan(t, files)
	if !p.Owed.RebootRequired {
		t.Error("the required reboot is forgotten before the host rebooted")
	}
	if !p.NoOp() {
		t.Error("a pending reboot alone makes the plan a non-no-op")
	}
	f.rebootHost(t, "2")
	if p := f.plan(t, files); p.Owed.RebootRequired || !p.NoOp() {
		t.Errorf("after the reboot: owed %+v, no-op %v", p.Owed, p.NoOp())
	}
}

func TestLeftoverTempFileIsRemovedAndNeverManaged(t *testing.T) {
	f := newFixture(t)
	files := []hostspec.EtcFile{etcFile("/etc/ssh/sshd_config.d/50-site.conf", "PasswordAuthentication no\n")}
	f.pass(t, files)
	// What a power loss between creating and renaming a temporary file
	// leaves behind.
	leftover := "/etc/ssh/sshd_config.d/" + tempPrefix + "0123456789abcdef"
	f.put(t, leftover, "PasswordAuth", 0o600)

	p := f.plan(t, files)
	equalStrings(t, "leftovers", p.Leftovers, []string{leftover})
	if len(p.Changes) != 0 || len(p.Drift) != 0 || p.NoOp() {
		t.Fatalf("changes %v drift %v no-op %v", changeSummary(p), driftSummary(p), p.NoOp())
	}
	if _, err := f.w.Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if f.exists(t, leftover) {
		t.Fatal("leftover temporary file not removed")
	}
	equalStrings(t, "managed", managedPaths(t, f.w), []string{"/etc/ssh/sshd_config.d/50-site.conf"})
	if p := f.plan(t, files); !p.NoOp() {
		t.Error("not a no-op after the cleanup")
	}
}

func TestStalePlanOverwritesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a\n"), etcFile("/etc/old.conf", "old\n")})

	// A local edit between Plan and Apply: the pruned file must survive.
	p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a2\n")})
	equalStrings(t, "changes", changeSummary(p), []string{"delete /etc/old.conf", "update /etc/a.conf"})
	f.put(t, "/etc/old.conf", "old\nedited after the plan\n", 0o644)
	_, err := f.w.Apply(ctx, p)
	if !errors.Is(err, ErrStalePlan) || !strings.Contains(err.Error(), "remove /etc/old.conf") {
		t.Fatalf("Apply error = %v, want ErrStalePlan naming /etc/old.conf", err)
	}
	if f.read(t, "/etc/old.conf") != "old\nedited after the plan\n" || f.read(t, "/etc/a.conf") != "a2\n" {
		t.Fatal("the stale change was applied, or the fresh one was not")
	}
	// The next pass sees the edit as drift and leaves the file alone.
	p, _ = f.pass(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a2\n")})
	equalStrings(t, "drift", driftSummary(p), []string{"modified /etc/old.conf (left alone)"})

	// Two plans from the same state: only the first may be applied.
	p1 := f.plan(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a3\n")})
	p2 := f.plan(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a4\n")})
	if _, err := f.w.Apply(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.w.Apply(ctx, p2); !errors.Is(err, ErrStalePlan) {
		t.Fatalf("second plan applied: %v", err)
	}
	if f.read(t, "/etc/a.conf") != "a3\n" {
		t.Fatal("a.conf overwritten by the stale plan")
	}
}

func TestInvalidEntriesAreProblemsAndNothingElseIsBlocked(t *testing.T) {
	f := newFixture(t)
	bad := etcFile("/etc/sha.conf", "x\n")
	bad.SHA256 = shaOf("y\n")
	files := []hostspec.EtcFile{
		etcFile("/etc/../root/.ssh/authorized_keys", "x\n"),
		etcFile("etc/relative.conf", "x\n"),
		etcFile("/etc", "x\n"),
		etcFile("/usr/lib/x.conf", "x\n"),
		etcFile("/etc/dir/", "x\n"),
		etcFile("/etc/"+tempPrefix+"x", "x\n"),
		etcFile("/etc/twice.conf", "1\n"),
		etcFile("/etc/twice.conf", "2\n"),
		bad,
		etcFile("/etc/unit.conf", "x\n", restart("--force")),
		etcFile("/etc/mode.conf", "x\n", mode(0o17777)),
		etcFile("/etc/owner.conf", "x\n", owner("nosuchuser", "root")),
		etcFile("/etc/good.conf", "x\n"),
	}
	p := f.plan(t, files)
	want := map[string]string{
		"/etc/../root/.ssh/authorized_keys": "not a normalized path",
		"etc/relative.conf":                 "not a path under /etc",
		"/etc":                              "not a path under /etc",
		"/usr/lib/x.conf":                   "not a path under /etc",
		"/etc/dir/":                         "not a normalized path",
		"/etc/" + tempPrefix + "x":          "reserved for bootsync's temporary files",
		"/etc/twice.conf":                   "listed more than once",
		"/etc/sha.conf":                     "content does not match its sha256",
		"/etc/unit.conf":                    `"--force" is not a systemd unit name`,
		"/etc/mode.conf":                    "is not a permission",
		"/etc/owner.conf":                   `owner "nosuchuser": no such user in /etc/passwd or /usr/lib/passwd`,
	}
	if len(p.Problems) != len(want) {
		t.Errorf("problems: %v", p.Err())
	}
	for _, pr := range p.Problems {
		w, ok := want[pr.Path]
		if !ok || !strings.Contains(pr.Error(), w) || !strings.Contains(pr.Error(), pr.Path) {
			t.Errorf("problem for %q = %q, want it to name the path and say %q", pr.Path, pr.Error(), w)
		}
	}
	equalStrings(t, "changes", changeSummary(p), []string{"create /etc/good.conf"})
}

// An entry that cannot be planned (here: its owner is unknown) must not be
// pruned as if it had left the spec.
func TestBrokenEntryIsNotPruned(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/svc.conf", "x\n")})
	p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/svc.conf", "y\n", owner("svc", "svc"))})
	equalStrings(t, "problems", problemPaths(p), []string{"/etc/svc.conf"})
	equalStrings(t, "changes", changeSummary(p), nil)
}

func TestManifestOfAnotherRootIsRefused(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a\n")})
	w, err := New(t.TempDir(), f.state)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Plan(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "records files under root") {
		t.Fatalf("Plan with another root's manifest: %v", err)
	}
}

func TestDamagedManifestIsAnError(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a\n")})
	writeHostFile(t, filepath.Join(f.state, ManifestFile), "{\"version\": 1, \"files\": {", 0o600)
	_, err := f.w.Plan(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), ManifestFile) {
		t.Fatalf("Plan with a damaged manifest: %v", err)
	}
}

func TestApplyWaitsForTheLockUntilContextEnds(t *testing.T) {
	f := newFixture(t)
	p := f.plan(t, []hostspec.EtcFile{etcFile("/etc/a.conf", "a\n")})
	if err := os.MkdirAll(f.state, 0o700); err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(f.state, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = f.w.Apply(ctx, p)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "held by another bootsync process") {
		t.Fatalf("Apply while locked: %v", err)
	}
	if f.exists(t, "/etc/a.conf") {
		t.Fatal("Apply wrote without the lock")
	}
	lf.Close()
	if _, err := f.w.Apply(context.Background(), p); err != nil {
		t.Fatalf("Apply after the lock was released: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for name, tc := range map[string]struct {
		root, state string
		opts        []Option
		want        string
	}{
		"relative root":      {"etc", "/var/lib/bootsync", nil, `root "etc" is not an absolute path`},
		"relative state":     {"/", "state", nil, `state directory "state" is not an absolute path`},
		"empty systemctl":    {"/", "/s", []Option{WithSystemctl()}, "WithSystemctl: the command must not be empty"},
		"zero diff limit":    {"/", "/s", []Option{WithDiffLimit(0)}, "WithDiffLimit: 0 is not a positive size"},
		"relative boot id":   {"/", "/s", []Option{WithBootIDFile("boot_id")}, `WithBootIDFile: "boot_id" is not an absolute path`},
		"empty systemctl[0]": {"/", "/s", []Option{WithSystemctl("")}, "WithSystemctl: the command must not be empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.root, tc.state, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New("/", "/var/lib/bootsync", WithSystemctl("/usr/bin/systemctl", "--no-block"), WithDiffLimit(1), WithBootIDFile("/x")); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}
