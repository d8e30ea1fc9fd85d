package etcoverlay

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/hostspec"
)

// `bootc rollback` boots the old deployment with its old /etc, where a
// file bootsync pruned since may still be: it is bootsync's content at a
// path that left the spec, and is pruned again, however often a rollback
// brings it back. (Found on real ostree: test/ostreehost.)
func TestPrunedFileBackFromARollbackIsPrunedAgain(t *testing.T) {
	f := newFixture(t)
	keep := etcFile("/etc/keep.conf", "k\n")
	f.pass(t, []hostspec.EtcFile{keep, etcFile("/etc/sudoers.d/ops", "ops ALL=(ALL) ALL\n")})
	f.pass(t, []hostspec.EtcFile{keep})
	if f.exists(t, "/etc/sudoers.d/ops") {
		t.Fatal("not pruned")
	}
	equalStrings(t, "managed", managedPaths(t, f.w), []string{"/etc/keep.conf"})

	for i := range 2 {
		f.put(t, "/etc/sudoers.d/ops", "ops ALL=(ALL) ALL\n", 0o644) // the rollback deployment's /etc
		p, _ := f.pass(t, []hostspec.EtcFile{keep})
		equalStrings(t, "changes", changeSummary(p), []string{"delete /etc/sudoers.d/ops"})
		if c := p.Changes[0]; !c.Prune || !strings.Contains(c.Reason, "rollback") {
			t.Errorf("rollback %d: change %+v, want a prune that says why", i, c)
		}
		if f.exists(t, "/etc/sudoers.d/ops") {
			t.Fatalf("rollback %d: the pruned file stayed", i)
		}
		if p := f.plan(t, []hostspec.EtcFile{keep}); !p.NoOp() || len(p.Drift) != 0 {
			t.Fatalf("rollback %d: the next plan is not a no-op: %v %v", i, changeSummary(p), driftSummary(p))
		}
		equalStrings(t, "managed", managedPaths(t, f.w), []string{"/etc/keep.conf"})
	}

	// Someone else's file at that path is left alone, and bootsync stops
	// watching the path.
	f.put(t, "/etc/sudoers.d/ops", "ops ALL=(ALL) NOPASSWD: /usr/bin/systemctl\n", 0o440)
	p, _ := f.pass(t, []hostspec.EtcFile{keep})
	if len(p.Changes) != 0 || len(p.Drift) != 0 || f.read(t, "/etc/sudoers.d/ops") != "ops ALL=(ALL) NOPASSWD: /usr/bin/systemctl\n" {
		t.Fatalf("someone else's file was touched: %v %v", changeSummary(p), driftSummary(p))
	}
}

// A pruned path that comes back into the spec while a rollback brought
// bootsync's old file back: the file is bootsync's, not an original to
// keep and put back later.
func TestPrunedPathBackInTheSpecIsNotTakenOver(t *testing.T) {
	f := newFixture(t)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/app.conf", "a1\n")})
	f.pass(t, nil)
	f.put(t, "/etc/app.conf", "a1\n", 0o644)
	p, _ := f.pass(t, []hostspec.EtcFile{etcFile("/etc/app.conf", "a2\n")})
	equalStrings(t, "changes", changeSummary(p), []string{"update /etc/app.conf"})
	if strings.Contains(p.Changes[0].Reason, "takes the file over") {
		t.Fatalf("bootsync's own old file was taken over as an original: %q", p.Changes[0].Reason)
	}
	p, _ = f.pass(t, nil)
	equalStrings(t, "changes", changeSummary(p), []string{"delete /etc/app.conf"})
}

// A file bootsync replaced was put back when its path left the spec; a
// rollback bringing bootsync's version back gets the original put back
// again, so the original is kept as long as that can happen.
func TestPutBackOriginalAgainAfterARollback(t *testing.T) {
	f := newFixture(t)
	f.put(t, "/etc/ssh/sshd_config", "# as the image ships it\n", 0o600)
	f.pass(t, []hostspec.EtcFile{etcFile("/etc/ssh/sshd_config", "PermitRootLogin no\n")})
	f.pass(t, nil)
	f.put(t, "/etc/ssh/sshd_config", "PermitRootLogin no\n", 0o644) // the rollback deployment's /etc
	p, _ := f.pass(t, nil)
	equalStrings(t, "changes", changeSummary(p), []string{"restore /etc/ssh/sshd_config"})
	if got := f.read(t, "/etc/ssh/sshd_config"); got != "# as the image ships it\n" {
		t.Fatalf("original not put back: %q", got)
	}
	if m, _, _ := f.stat(t, "/etc/ssh/sshd_config"); m != 0o600 {
		t.Errorf("original mode not put back: %04o", m)
	}
	if p := f.plan(t, nil); !p.NoOp() {
		t.Fatalf("the next plan is not a no-op: %v", changeSummary(p))
	}
	names, err := readDirNames(filepath.Join(f.state, OriginalsDir))
	if err != nil || len(names) != 1 || names[0] != shaOf("# as the image ships it\n") {
		t.Fatalf("kept originals %v (%v): want exactly the one a rollback may still need", names, err)
	}
}
