package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleetlockserver"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/gitserver"
)

func switchCalls(calls []bootcsim.Call) int {
	n := 0
	for _, c := range calls {
		if len(c.Argv) > 0 && c.Argv[0] == "switch" {
			n++
		}
	}
	return n
}

// A bad image fails its health check after the reboot: the agent rolls back
// by itself, quarantines the digest, does not try it again however many
// passes run, and tries a new digest from Git normally.
func TestBadImageIsRolledBackAndQuarantined(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	bad := f.Image("bad", bootcsim.ImageOptions{}, true)
	v3 := f.Image("v3", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()
	h.Sim.MarkBad(t, digestOf(bad))

	f.Commit("bad", map[string]string{"fleet.yaml": f.FleetYAML(bad, "")})
	reboots := 0
	for range 6 {
		if h.Pass().Killed {
			reboots++
		}
		if h.Booted() == digestOf(v1) && reboots == 2 {
			break
		}
	}
	if reboots != 2 || h.Booted() != digestOf(v1) {
		t.Fatalf("after the bad update: %d reboots, booted %s; want 2 (update, automatic rollback) and v1", reboots, h.Booted())
	}
	h.MustPass() // the first pass after the rollback
	st := h.Status()
	if len(st.Quarantine) != 1 || st.Quarantine[0].Digest != digestOf(bad) || st.Quarantine[0].Check != "simulated-os" {
		t.Fatalf("quarantine = %+v, want the bad digest, failed check simulated-os", st.Quarantine)
	}
	if !strings.Contains(st.Quarantine[0].Output, "marked bad") && !strings.Contains(st.Quarantine[0].Reason, "simulated-os") {
		t.Fatalf("quarantine entry does not say what failed: %+v", st.Quarantine[0])
	}
	if st.Health == nil || st.Health.Passed || st.Health.Digest != digestOf(bad) {
		t.Fatalf("health = %+v, want the failed verdict on the bad image", st.Health)
	}

	// No boot loop: more passes do not touch the quarantined image.
	switches, boots := switchCalls(h.Calls()), h.Boots()
	for range 4 {
		h.MustPass()
	}
	if switchCalls(h.Calls()) != switches || h.Boots() != boots {
		t.Fatalf("the quarantined image was tried again: switches %d -> %d, boots %d -> %d", switches, switchCalls(h.Calls()), boots, h.Boots())
	}
	if st := h.Status(); st.LastPass.State != "quarantined" || !strings.Contains(st.LastPass.Reason, "quarantined") {
		t.Fatalf("last pass = %+v, want it to say the image is quarantined", st.LastPass)
	}

	// `bootsync unquarantine` lets an operator retry it: the bad image is
	// still the rollback deployment, so the plan goes back to it with a
	// plain bootc rollback.
	if r := h.Run(nil, "unquarantine", "--config", h.Config, digestOf(bad)[:20]); r.Exit != 0 || !strings.Contains(r.Stdout, digestOf(bad)) {
		t.Fatalf("unquarantine: %s", r)
	}
	if r := h.Run(nil, "plan", "--config", h.Config); r.Exit != 0 || !strings.Contains(r.Stdout, "rollback to "+digestOf(bad)[:19]) {
		t.Fatalf("plan after unquarantine: %s", r)
	}

	// A new digest in Git is tried normally.
	f.Commit("v3", map[string]string{"fleet.yaml": f.FleetYAML(v3, "")})
	if r := h.Converge(5); r != 1 {
		t.Fatalf("v3 took %d reboots, want 1", r)
	}
	if h.Booted() != digestOf(v3) {
		t.Fatalf("booted %s, want v3", h.Booted())
	}
}

func writeMachineID(t *testing.T, h *fleettest.Host, i int) {
	t.Helper()
	h.Sim.WriteRootFile(t, "etc/machine-id", fmt.Appendf(nil, "%032x\n", 0xb0075000+i), 0o444)
}

// A good image under update.reboot: fleetlock takes a slot before the
// reboot and releases it once the new image passed its checks.
func TestFleetLockSlotTakenAndReleased(t *testing.T) {
	f := newFleet(t)
	lock := fleetlockserver.Start(t, map[string]int{"web": 1})
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	policy := "reboot: fleetlock\nfleetlock: {url: \"" + lock.URL() + "\", group: web}"
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, policy)})
	h := f.NewHost("web-01", v1, hostOptions{})
	writeMachineID(t, h, 1)
	h.MustPass()
	f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, policy)})
	if r := h.Converge(5); r != 1 {
		t.Fatalf("%d reboots, want 1", r)
	}
	var ops []string
	for _, e := range lock.History() {
		ops = append(ops, e.Op)
	}
	if len(ops) < 2 || ops[0] != "pre-reboot" || ops[len(ops)-1] != "steady-state" {
		t.Fatalf("FleetLock history %q: want pre-reboot then steady-state", ops)
	}
	if n := len(lock.Holders("web")); n != 0 || h.Journal().FleetLockHeld {
		t.Fatalf("after a verified update the slot is still held (%d holders)", n)
	}
}

// Ten hosts, two FleetLock slots: never more than two reboot at once, and
// a host whose update failed keeps its slot, so the rollout slows down
// instead of spreading a bad image.
func TestFleetLockTenHostsTwoSlots(t *testing.T) {
	f := newFleet(t)
	lock := fleetlockserver.Start(t, map[string]int{"web": 2})
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	bad := f.Image("bad", bootcsim.ImageOptions{}, true)
	policy := "reboot: fleetlock\nfleetlock: {url: \"" + lock.URL() + "\", group: web}"
	files := map[string]string{"fleet.yaml": f.FleetYAML(v1, policy)}
	f.Commit("v1", files)
	var hosts []*fleettest.Host
	for i := range 10 {
		h := f.NewHost(fmt.Sprintf("web-%02d", i), v1, hostOptions{})
		writeMachineID(t, h, i)
		h.MustPass()
		hosts = append(hosts, h)
	}
	hosts[9].Sim.MarkBad(t, digestOf(bad))
	f.Commit("v2 everywhere, web-09 gets a bad image", map[string]string{
		"fleet.yaml":        f.FleetYAML(v2, policy),
		"hosts/web-09.yaml": hostYAML("web-09", "spec:\n  image: "+bad+"\n"),
	})

	// Every host runs passes on its own, as agents do.
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			deadline := time.Now().Add(3 * time.Minute)
			for time.Now().Before(deadline) {
				r := h.Pass()
				if r.Killed {
					continue // rebooted; the next pass runs in the new boot
				}
				st, err := reconcile.NewStatusStore(h.StateDir).Load()
				j, jerr := reconcile.NewJournalStore(h.StateDir).Load()
				if err != nil || jerr != nil || st == nil || st.LastPass == nil {
					continue
				}
				switch st.LastPass.State {
				case "converged":
					if !j.FleetLockHeld {
						return
					}
				case "quarantined":
					return // the failed host keeps its slot
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()

	if max := lock.MaxHolders("web"); max > 2 || max < 1 {
		t.Fatalf("FleetLock saw %d hosts rebooting at once, want at most 2", max)
	}
	for _, h := range hosts[:9] {
		if h.Booted() != digestOf(v2) {
			t.Errorf("%s booted %s, want v2", h.Name, h.Booted())
		}
		if h.Journal().FleetLockHeld {
			t.Errorf("%s still holds a slot", h.Name)
		}
	}
	if h := hosts[9]; h.Booted() != digestOf(v1) || !h.Journal().FleetLockHeld {
		t.Errorf("web-09 (bad image): booted %s, holds its slot %v; want v1 and the slot kept", h.Booted(), h.Journal().FleetLockHeld)
	}
	if holders := lock.Holders("web"); len(holders) != 1 {
		t.Errorf("slots held at the end: %v, want exactly the failed host's", holders)
	}
}

// A closed maintenance window holds the reboot (the image is staged and
// locked against an unplanned reboot) and it happens once the window opens,
// at the right local time.
func TestWindowHoldsRebootUntilItOpens(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	policy := `reboot: window
windows: [{days: [sat], start: "02:00", duration: 2h, timezone: Asia/Seoul}]`
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, policy)})
	h := f.NewHost("edge-01", v1, hostOptions{})
	h.MustPass()
	f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, policy)})

	// Friday 23:00 in Seoul: closed.
	friday := "BOOTSYNC_TEST_NOW=2026-11-27T23:00:00+09:00"
	if r := h.Pass(friday); r.Exit != 0 || r.Killed {
		t.Fatalf("pass outside the window: %s", r)
	}
	st := h.Status()
	if st.LastPass.State != "waiting" || !strings.Contains(st.LastPass.Reason, "Sat 2026-11-28 02:00 KST") {
		t.Fatalf("last pass %+v: want waiting for Sat 02:00 KST", st.LastPass)
	}
	status := h.Sim.Status(t).Status
	if status.Staged == nil || status.Staged.Digest() != digestOf(v2) || !status.Staged.DownloadOnly {
		t.Fatalf("staged %+v: want v2 staged download-only while the window is closed", status.Staged)
	}
	// 01:59 KST: still closed. The same instant in UTC is Friday 16:59.
	if r := h.Pass("BOOTSYNC_TEST_NOW=2026-11-27T16:59:00Z"); r.Killed || h.Status().LastPass.State != "waiting" {
		t.Fatalf("pass at 01:59 KST rebooted or changed state: %s", r)
	}
	// 02:00 KST: open; the staged image is unlocked and the host reboots.
	if r := h.Pass("BOOTSYNC_TEST_NOW=2026-11-28T02:00:00+09:00"); !r.Killed {
		t.Fatalf("pass in the window did not reboot: %s\n%+v", r, h.Status().LastPass)
	}
	h.MustPass()
	if h.Booted() != digestOf(v2) {
		t.Fatalf("booted %s, want v2", h.Booted())
	}
}

// update.paused stops new changes; drift is still reported.
func TestPausedHostChangesNothingButReportsDrift(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()
	f.Commit("v2, paused", map[string]string{"fleet.yaml": f.FleetYAML(v2, "reboot: immediate\npaused: true")})
	h.Sim.WriteEtc(t, "motd", "changed by hand\n")
	h.MustPass()
	st := h.Status()
	if st.LastPass.State != "paused" || len(verbs(h.Calls())) != 0 {
		t.Fatalf("paused host: state %q, bootc calls %q", st.LastPass.State, verbs(h.Calls()))
	}
	if !slices.ContainsFunc(st.Drift, func(d reconcile.DriftStatus) bool { return d.Path == "/etc/motd" }) {
		t.Fatalf("drift %+v: want /etc/motd reported while paused", st.Drift)
	}
	if got, _ := h.Etc("motd"); got != "changed by hand\n" {
		t.Fatalf("a paused host corrected drift: %q", got)
	}
}

// update.deferRebootWhileUsers holds the reboot while someone is logged in.
func TestRebootDeferredWhileUsersAreLoggedIn(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	policy := "reboot: immediate\ndeferRebootWhileUsers: true\nmaxDeferral: 1h"
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, policy)})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()
	h.Sim.WriteRootFile(t, "run/systemd/sessions/3", []byte("UID=1000\nUSER=ops\nACTIVE=1\nSTATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\n"), 0o644)
	f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, policy)})
	if r := h.Pass(); r.Killed || h.Status().LastPass.State != "waiting" || !strings.Contains(h.Status().LastPass.Reason, "1 user session") {
		t.Fatalf("with a user logged in: %s\n%+v", r, h.Status().LastPass)
	}
	if err := os.Remove(filepath.Join(h.Sim.Root, "run/systemd/sessions/3")); err != nil {
		t.Fatal(err)
	}
	if r := h.Converge(4); r != 1 {
		t.Fatalf("after logout: %d reboots, want 1", r)
	}
}

// The management-plane check: an image whose /etc breaks the host's route
// to its Git server (here: it ships a CA bundle that no longer trusts the
// server) fails verification although every declared check passes, and is
// rolled back.
func TestManagementPlaneCheckCatchesLostRouteToGit(t *testing.T) {
	git := gitserver.New(t, gitserver.WithTLS())
	f := newFleetOn(t, git)
	goodCA, wrongCA := string(git.CACertPEM()), string(gitserver.NewTestCA(t))
	v0 := f.Image("v0", bootcsim.ImageOptions{}, true)
	v1 := f.Image("v1", bootcsim.ImageOptions{Etc: map[string]string{"pki/bootsync/git-ca.pem": goodCA}}, true)
	broken := f.Image("broken", bootcsim.ImageOptions{Etc: map[string]string{"pki/bootsync/git-ca.pem": wrongCA}}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v0, hostOptions{Etc: map[string]string{"pki/bootsync/git-ca.pem": goodCA},
		CAFile: "etc/pki/bootsync/git-ca.pem"})
	h.Converge(5) // v0 -> v1: the CA now comes from the image
	if h.Booted() != digestOf(v1) {
		t.Fatalf("booted %s, want v1", h.Booted())
	}
	f.Commit("broken", map[string]string{"fleet.yaml": f.FleetYAML(broken, "")})
	reboots := 0
	for range 6 {
		if h.Pass().Killed {
			reboots++
		}
		if reboots == 2 {
			break
		}
	}
	h.MustPass()
	if h.Booted() != digestOf(v1) || reboots != 2 {
		t.Fatalf("booted %s after %d reboots, want v1 after 2 (update, rollback)", h.Booted(), reboots)
	}
	st := h.Status()
	if len(st.Quarantine) != 1 || st.Quarantine[0].Check != "bootsync:git-remote" {
		t.Fatalf("quarantine %+v: want the broken image, failed by the git-remote check", st.Quarantine)
	}
	if got, _ := h.Etc("pki/bootsync/git-ca.pem"); got != goodCA {
		t.Fatal("after the rollback the host does not have its working CA back")
	}
}

// update.reboot: manual stages the update and waits for `bootsync reboot`.
func TestManualRebootWaitsForTheOperator(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "reboot: manual")})
	h := f.NewHost("db-01", v1, hostOptions{})
	h.MustPass()
	f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, "reboot: manual")})
	for range 3 {
		h.MustPass()
	}
	st := h.Status()
	if st.LastPass.State != "waiting" || !strings.Contains(st.LastPass.Reason, "bootsync reboot") || h.Boots() != 0 {
		t.Fatalf("manual policy: state %+v, boots %d", st.LastPass, h.Boots())
	}
	if staged := h.Sim.Status(t).StagedDigest(); staged != digestOf(v2) {
		t.Fatalf("staged %q, want v2 staged and waiting", staged)
	}
	if r := h.Run(nil, "reboot", "--config", h.Config); !r.Killed {
		t.Fatalf("bootsync reboot did not reboot: %s", r)
	}
	h.MustPass()
	if h.Booted() != digestOf(v2) || h.Status().LastPass.State != "converged" {
		t.Fatalf("after bootsync reboot: booted %s, %+v", h.Booted(), h.Status().LastPass)
	}
}
