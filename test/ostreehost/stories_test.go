package ostreehost_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/ostreehost"
)

// requested reports which of paths the registry was asked for.
func requested(f *fleet, paths []string) []string {
	var hit []string
	for _, r := range f.Registry.Requests() {
		if slices.Contains(paths, r.Path) {
			hit = append(hit, r.String())
		}
	}
	return hit
}

// Story 1 on real ostree: a merged change is staged by `bootc switch`,
// finalized at shutdown, booted, verified by the health checks and
// committed; a `git revert` goes back with `bootc rollback` (libostree
// reorders the deployments) and one reboot, without pulling anything.
func TestOSTreeMergeThenRevertRollsBackWithoutPull(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", "ok", withEtc(nil), true)
	v2 := f.image("v2", "ok", withEtc(nil), true)
	etc := []string{file("/etc/motd", "managed by bootsync\n"), file("/etc/chrony.conf", "pool pool.ntp.org iburst\n")}
	f.Commit("fleet on v1", map[string]string{"fleet.yaml": fleetYAML(v1, etc)})
	h := f.host("web-01", v1)

	// Already on v1: the first pass writes /etc only.
	h.mustPass()
	if got, _ := h.Etc("motd"); got != "managed by bootsync\n" {
		t.Fatalf("/etc/motd = %q", got)
	}
	if got := h.verbs(0); len(got) != 0 || h.Boots() != 1 {
		t.Fatalf("a host already on the desired image was changed: bootc calls %q, boots %d", got, h.Boots())
	}

	// Merge: v2.
	f.Commit("fleet on v2", map[string]string{"fleet.yaml": fleetYAML(v2, etc)})
	if r := h.converge(5); r != 1 {
		t.Fatalf("moving to v2 took %d reboots, want exactly 1", r)
	}
	st := h.Status()
	if st.BootedDigest() != fleettest.DigestOf(v2) || st.RollbackDigest() != fleettest.DigestOf(v1) {
		t.Fatalf("after the update: booted %s rollback %s", st.BootedDigest(), st.RollbackDigest())
	}
	if as := h.status(); as.Health == nil || !as.Health.Passed || as.Health.Digest != fleettest.DigestOf(v2) {
		t.Fatalf("health after the update = %+v, want a passed verification of v2", as.Health)
	}
	if j := h.journal(); j.Committed != fleettest.DigestOf(v2) || j.Pending != nil {
		t.Fatalf("journal after the update: committed %s pending %+v", j.Committed, j.Pending)
	}
	if got := h.verbs(0); !slices.Contains(got, "switch --quiet --enforce-container-sigpolicy "+v2) {
		t.Fatalf("bootc calls %q: want a switch to exactly %s with signature enforcement", got, v2)
	}
	if got, _ := h.Etc("motd"); got != "managed by bootsync\n" {
		t.Fatalf("/etc/motd after the finalization = %q", got)
	}

	// Revert: v1 is the rollback deployment.
	calls, commits, deps := len(h.Calls()), h.Commits(), h.Deployments()
	f.Registry.Reset()
	f.Repo.Revert("HEAD")
	f.Repo.Push()
	if r := h.converge(5); r != 1 {
		t.Fatalf("the revert took %d reboots, want exactly 1", r)
	}
	if got := h.booted(); got != fleettest.DigestOf(v1) {
		t.Fatalf("after the revert booted %s, want v1", got)
	}
	got := h.verbs(calls)
	if !slices.Contains(got, "rollback") || slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "switch") }) {
		t.Fatalf("bootc calls for the revert = %q, want a rollback and no switch", got)
	}
	for _, c := range h.Calls()[calls:] {
		if c.Pulled || c.Blobs != 0 {
			t.Fatalf("bootc contacted the registry during the revert: %+v", c)
		}
	}
	if hit := requested(f, append(blobPaths(t, f, v1), blobPaths(t, f, v2)...)); len(hit) != 0 {
		t.Fatalf("image blobs were downloaded during the revert: %v", hit)
	}
	if !slices.Equal(h.Commits(), commits) || !slices.Equal(h.Deployments(), deps) {
		t.Fatalf("the revert changed the repository or deployed again: commits %v -> %v, deployments %v -> %v", commits, h.Commits(), deps, h.Deployments())
	}
	if got, _ := h.Etc("motd"); got != "managed by bootsync\n" {
		t.Fatalf("/etc/motd after the rollback = %q", got)
	}
}

// Story 2 on real ostree: /etc across an update, through libostree's
// three-way merge at finalization. An administrator's edit of a file the
// agent does not manage survives (even though the new image changes that
// file too); a managed file that the new image also changes keeps the
// fleet's content; a file the agent pruned in the same pass does not come
// back; files nobody touched follow the new image; /var is shared.
func TestOSTreeEtcAcrossAnUpdate(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", "ok", withEtc(map[string]string{
		"chrony.conf": "pool image-v1 iburst\n", "ssh/sshd_config": "Port 22\n", "issue": "FakeOS 1\n"}), true)
	v2 := f.image("v2", "ok", withEtc(map[string]string{
		"chrony.conf": "pool image-v2 iburst\n", "ssh/sshd_config": "Port 22\nX11Forwarding no\n", "issue": "FakeOS 2\n"}), true)
	chrony := file("/etc/chrony.conf", "pool fleet.example.com iburst\n")
	f.Commit("v1", map[string]string{"fleet.yaml": fleetYAML(v1, []string{chrony, file("/etc/app/old.conf", "old\n")})})
	h := f.host("web-01", v1)
	h.mustPass()
	if got, _ := h.Etc("app/old.conf"); got != "old\n" {
		t.Fatalf("/etc/app/old.conf = %q", got)
	}

	// The administrator's own changes.
	h.WriteEtc("ssh/sshd_config", "Port 2222\n")
	h.WriteEtc("local.conf", "added by the admin\n")
	h.WriteVar("lib/app/data", "precious\n")

	// One commit: v2, and old.conf leaves the spec.
	f.Commit("v2, drop old.conf", map[string]string{"fleet.yaml": fleetYAML(v2, []string{chrony})})
	if r := h.converge(5); r != 1 {
		t.Fatalf("the update took %d reboots, want 1", r)
	}
	if got := h.booted(); got != fleettest.DigestOf(v2) {
		t.Fatalf("booted %s, want v2", got)
	}
	for rel, want := range map[string]string{
		"ssh/sshd_config": "Port 2222\n",                     // local edit wins over v2's change
		"local.conf":      "added by the admin\n",            // local addition carried
		"chrony.conf":     "pool fleet.example.com iburst\n", // managed: the fleet's, not v2's
		"issue":           "FakeOS 2\n",                      // untouched: follows the image
	} {
		if got, ok := h.Etc(rel); got != want {
			t.Errorf("/etc/%s after the update = %q (exists %v), want %q", rel, got, ok, want)
		}
	}
	if _, ok := h.Etc("app/old.conf"); ok {
		t.Error("/etc/app/old.conf was pruned but came back after the update")
	}
	if got, _ := h.Var("lib/app/data"); got != "precious\n" {
		t.Errorf("/var/lib/app/data = %q after the update", got)
	}
	if st := h.status(); len(st.Drift) != 0 {
		t.Errorf("drift after the update: %+v", st.Drift)
	}
	if !slices.ContainsFunc(h.status().Warnings, func(w string) bool { return strings.HasPrefix(w, "/etc/chrony.conf is also shipped by the image") }) {
		t.Errorf("warnings %q: want the image-shipped warning for /etc/chrony.conf", h.status().Warnings)
	}
}

// Story 3 on real ostree: `bootc rollback` boots the old deployment with
// its own old /etc (no merge). The fleet changed /etc while the host ran
// v2 (a file changed, one added, one pruned), then the image went back to
// v1: after the rollback the agent brings v1's /etc to the fleet's state.
func TestOSTreeRollbackEtcIsBroughtToTheFleetState(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", "ok", withEtc(nil), true)
	v2 := f.image("v2", "ok", withEtc(nil), true)
	before := []string{file("/etc/motd", "m1\n"), file("/etc/app/a.conf", "a1\n")}
	after := []string{file("/etc/motd", "m2\n"), file("/etc/app/n.conf", "n2\n")}
	f.Commit("v1", map[string]string{"fleet.yaml": fleetYAML(v1, before)})
	h := f.host("web-01", v1)
	h.mustPass()
	f.Commit("v2", map[string]string{"fleet.yaml": fleetYAML(v2, before)})
	if r := h.converge(5); r != 1 {
		t.Fatalf("the update took %d reboots, want 1", r)
	}
	v1Dir := h.Deployments()
	// On v2, /etc changes without a new image: no reboot.
	f.Commit("etc on v2", map[string]string{"fleet.yaml": fleetYAML(v2, after)})
	if r := h.converge(3); r != 0 {
		t.Fatalf("an /etc-only change rebooted %d times", r)
	}
	// Then the image goes back to v1, keeping the new /etc.
	f.Commit("back to v1", map[string]string{"fleet.yaml": fleetYAML(v1, after)})
	calls := len(h.Calls())
	if r := h.converge(5); r != 1 {
		t.Fatalf("going back to v1 took %d reboots, want 1", r)
	}
	if got := h.booted(); got != fleettest.DigestOf(v1) {
		t.Fatalf("booted %s, want v1", got)
	}
	if got := h.verbs(calls); !slices.Equal(got, []string{"rollback"}) {
		t.Fatalf("bootc calls = %q, want exactly one rollback", got)
	}
	if !slices.Equal(h.Deployments(), v1Dir) {
		t.Fatalf("deployments %v -> %v: a rollback must not deploy again", v1Dir, h.Deployments())
	}
	for rel, want := range map[string]string{"motd": "m2\n", "app/n.conf": "n2\n"} {
		if got, _ := h.Etc(rel); got != want {
			t.Errorf("/etc/%s after the rollback = %q, want %q", rel, got, want)
		}
	}
	if got, ok := h.Etc("app/a.conf"); ok {
		t.Errorf("/etc/app/a.conf left the spec on v2 but is back after the rollback: %q", got)
	}
}

// Story 4 on real ostree: an image that fails its health check after the
// reboot is rolled back by the agent itself (libostree reorders the
// deployments; nothing is deployed or pulled), quarantined, and never
// tried again however many passes run; a new good image is taken normally.
func TestOSTreeBadImageIsRolledBackAndQuarantined(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", "ok", withEtc(nil), true)
	bad := f.image("bad", "broken", withEtc(nil), true)
	v3 := f.image("v3", "ok", withEtc(nil), true)
	etc := []string{file("/etc/motd", "managed by bootsync\n")}
	f.Commit("v1", map[string]string{"fleet.yaml": fleetYAML(v1, etc)})
	h := f.host("web-01", v1)
	h.mustPass()

	f.Commit("bad", map[string]string{"fleet.yaml": fleetYAML(bad, etc)})
	var deps []string
	for range 6 {
		r := h.pass()
		if r.Rebooted && h.reboots == 1 {
			deps = h.Deployments() // booted into bad; v1 is the rollback
		}
		if h.reboots == 2 {
			break
		}
	}
	if h.reboots != 2 || h.booted() != fleettest.DigestOf(v1) {
		t.Fatalf("after the bad update: %d reboots, booted %s; want 2 (update, automatic rollback) and v1", h.reboots, h.booted())
	}
	if !slices.Equal(h.Deployments(), deps) {
		t.Fatalf("the automatic rollback deployed again: %v -> %v", deps, h.Deployments())
	}
	h.mustPass()
	st := h.status()
	if len(st.Quarantine) != 1 || st.Quarantine[0].Digest != fleettest.DigestOf(bad) || st.Quarantine[0].Check != "os-health" {
		t.Fatalf("quarantine = %+v, want the bad digest, failed check os-health", st.Quarantine)
	}
	if st.Health == nil || st.Health.Passed || st.Health.Digest != fleettest.DigestOf(bad) {
		t.Fatalf("health = %+v, want the failed verdict on the bad image", st.Health)
	}
	if got, _ := h.Etc("motd"); got != "managed by bootsync\n" {
		t.Fatalf("/etc/motd after the automatic rollback = %q", got)
	}

	// No boot loop.
	calls, boots, commits := len(h.Calls()), h.Boots(), h.Commits()
	for range 3 {
		h.mustPass()
	}
	if got := h.verbs(calls); len(got) != 0 || h.Boots() != boots || !slices.Equal(h.Commits(), commits) {
		t.Fatalf("the quarantined image was tried again: bootc calls %q, boots %d -> %d", got, boots, h.Boots())
	}
	if st := h.status(); st.LastPass.State != "quarantined" {
		t.Fatalf("last pass = %+v, want quarantined", st.LastPass)
	}

	// A new good image is taken normally.
	f.Commit("v3", map[string]string{"fleet.yaml": fleetYAML(v3, etc)})
	if r := h.converge(5); r != 1 {
		t.Fatalf("v3 took %d reboots, want 1", r)
	}
	if got := h.booted(); got != fleettest.DigestOf(v3) {
		t.Fatalf("booted %s, want v3", got)
	}
}

// crashThenConverge runs passes with the agent set to kill itself at point
// (like a power cut of the agent alone: no deferred code runs) until that
// happens once, then normal passes until the host converges. It returns
// the reboots the agent started in total.
func crashThenConverge(t *testing.T, h *agentHost, point string, env ...string) int {
	t.Helper()
	before := h.reboots
	fired := false
	for range 6 {
		r := h.pass(append([]string{"BOOTSYNC_FAULT_POINT=" + point}, env...)...)
		if r.Killed {
			fired = true
			break
		}
		if !r.Rebooted && r.Exit != 0 {
			t.Fatalf("pass before the crash at %s failed: %s", point, r)
		}
	}
	if !fired {
		t.Fatalf("the agent never reached fault point %s", point)
	}
	h.converge(6, env...)
	return h.reboots - before
}

// checkSettled checks what every crash variant must end with.
func checkSettled(t *testing.T, h *agentHost, point, image, pool string) {
	t.Helper()
	if got := h.booted(); got != fleettest.DigestOf(image) {
		t.Errorf("crash at %s: booted %s, want %s", point, got, fleettest.DigestOf(image))
	}
	if got, _ := h.Etc("chrony.conf"); got != "pool "+pool+" iburst\n" {
		t.Errorf("crash at %s: chrony.conf = %q", point, got)
	}
	if got, _ := h.Etc("admin.conf"); got != "the admin's\n" {
		t.Errorf("crash at %s: the admin's /etc/admin.conf = %q", point, got)
	}
	if got, _ := h.Var("lib/app/data"); got != "precious\n" {
		t.Errorf("crash at %s: /var/lib/app/data = %q", point, got)
	}
	j := h.journal()
	if j.Pending != nil || j.Intent != nil || len(j.Quarantine) != 0 {
		t.Errorf("crash at %s: journal not settled: pending %+v intent %+v quarantine %v", point, j.Pending, j.Intent, j.Quarantine)
	}
	if st := h.status(); st.Health == nil || !st.Health.Passed || st.Health.Digest != fleettest.DigestOf(image) {
		t.Errorf("crash at %s: the update was not verified: %+v", point, st.Health)
	}
}

// Story 5 on real ostree: the agent killed at each point around staging,
// finalization and the reboot still converges with exactly one reboot and
// loses no file. The variants run one after the other on one host, each
// an update to a new image with a new /etc content. With a reboot window,
// the agent stages download-only (ostree's finalization lock): once the
// window opens it unlocks it (upgrade --from-downloaded) and reboots; after
// an unplanned reboot, which discards a locked staged deployment, it
// stages it again, without a download.
func TestOSTreeCrashAroundStagingFinalizationAndReboot(t *testing.T) {
	f := newFleet(t)
	v0 := f.image("v0", "ok", withEtc(nil), true)
	f.Commit("v0", map[string]string{"fleet.yaml": fleetYAML(v0, []string{file("/etc/chrony.conf", "pool v0 iburst\n")})})
	h := f.host("web-01", v0)
	h.mustPass()
	h.WriteEtc("admin.conf", "the admin's\n")
	h.WriteVar("lib/app/data", "precious\n")
	parent := h.T
	defer func() { h.T = parent }()

	for _, point := range []string{"before-write-etc", "after-write-etc", "before-switch", "after-switch", "before-reboot", "before-verify", "after-verify"} {
		t.Run(point, func(t *testing.T) {
			h.T = t
			img := f.image(point, "ok", withEtc(nil), true)
			f.Commit(point, map[string]string{"fleet.yaml": fleetYAML(img, []string{file("/etc/chrony.conf", "pool "+point+" iburst\n")})})
			if r := crashThenConverge(t, h, point); r != 1 {
				t.Errorf("crash at %s: %d reboots for one update, want exactly 1", point, r)
			}
			checkSettled(t, h, point, img, point)
		})
	}

	// Power lost during the shutdown, before ostree finalized the staged
	// deployment: the host boots the old image. That image was never
	// tried, so it is not quarantined: it is staged once more (one more
	// reboot, no download).
	t.Run("power-cut-before-finalize", func(t *testing.T) {
		h.T = t
		img := f.image("power-cut", "ok", withEtc(nil), true)
		f.Commit("power-cut", map[string]string{"fleet.yaml": fleetYAML(img, []string{file("/etc/chrony.conf", "pool power-cut iburst\n")})})
		h.CutPowerAtNextShutdown()
		if r := h.converge(6); r != 2 {
			t.Errorf("power cut before finalization: %d reboots, want 2 (the lost one and one more)", r)
		}
		checkSettled(t, h, "power-cut-before-finalize", img, "power-cut")
	})

	closed, open := "BOOTSYNC_TEST_NOW=2026-11-28T12:00:00+09:00", "BOOTSYNC_TEST_NOW=2026-11-30T01:30:00+09:00"
	window := []string{"reboot: window", `windows: [{days: [mon], start: "01:00", duration: 2h, timezone: Asia/Seoul}]`}
	for _, tc := range []struct {
		point     string
		unplanned bool // an unplanned reboot while the staged deployment is locked
	}{{"before-lock-staged", true}, {"after-lock-staged", false}} {
		name := tc.point
		if tc.unplanned {
			name += "+unplanned-reboot"
		}
		t.Run(name, func(t *testing.T) {
			h.T = t
			point := tc.point
			img := f.image(point, "ok", withEtc(nil), true)
			f.Commit(point, map[string]string{"fleet.yaml": fleetYAML(img, []string{file("/etc/chrony.conf", "pool "+point+" iburst\n")}, window...)})
			before, from := h.booted(), len(h.Calls())
			if r := h.pass("BOOTSYNC_FAULT_POINT="+point, closed); !r.Killed {
				t.Fatalf("the fault at %s did not fire: %s", point, r)
			}
			h.mustPassWith(closed) // locks the staged deployment if the crash came first
			if st := h.Status(); st.StagedDigest() != fleettest.DigestOf(img) || !st.Status.Staged.DownloadOnly {
				t.Fatalf("crash at %s: staged %+v, want the image staged download-only", point, st.Status.Staged)
			}
			if tc.unplanned {
				h.Reboot() // ostree does not finalize a locked deployment
				if st := h.Status(); st.BootedDigest() != before || st.Status.Staged != nil {
					t.Fatalf("after an unplanned reboot: booted %s staged %+v; want the old image and nothing staged", st.BootedDigest(), st.Status.Staged)
				}
			}
			if r := h.converge(6, open); r != 1 {
				t.Errorf("crash at %s: %d reboots in the window, want exactly 1", point, r)
			}
			checkSettled(t, h, point, img, point)
			checkWindowCalls(t, h.Calls()[from:], tc.unplanned)
		})
	}
}

// checkWindowCalls checks how a staged image locked outside the window got
// applied: staged again without a download after an unplanned reboot
// discarded it, else unlocked with upgrade --from-downloaded.
func checkWindowCalls(t *testing.T, calls []ostreehost.Call, unplanned bool) {
	t.Helper()
	var switches []ostreehost.Call
	unlocked := false
	for _, c := range calls {
		if strings.Join(c.Argv, " ") == "upgrade --quiet --from-downloaded" {
			unlocked = c.Exit == 0 && !c.Pulled
		}
		if c.Argv[0] == "switch" {
			switches = append(switches, c)
		}
	}
	if unplanned && (len(switches) != 2 || switches[1].Blobs != 0) {
		t.Errorf("switches %+v: want the image staged twice, the second time without a download", switches)
	}
	if !unplanned && (len(switches) != 1 || !unlocked) {
		t.Errorf("calls %+v: want one switch and the locked deployment applied with upgrade --from-downloaded, offline", calls)
	}
}
