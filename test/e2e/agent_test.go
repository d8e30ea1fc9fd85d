package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/signer"
)

// A merged change reaches the host: /etc first, then the new image, one
// reboot, verified by the health checks. A `git revert` brings the old image
// back with `bootc rollback`, without pulling anything.
func TestConvergeOnMergeThenRevertRollsBackWithoutPull(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	v2 := f.image("v2", bootcsim.ImageOptions{Version: "2"}, true)
	f.commit("fleet on v1", map[string]string{"fleet.yaml": f.fleetYAML(v1, "")})
	h := f.newHost("web-01", v1, hostOptions{})

	// The host already runs v1: the first pass only writes /etc.
	h.mustPass()
	if got, _ := h.etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("/etc/motd = %q", got)
	}
	if h.boots() != 0 || len(verbs(h.calls())) != 0 {
		t.Fatalf("a host already on the desired image was changed: boots %d, bootc calls %q", h.boots(), verbs(h.calls()))
	}

	// Merge: the fleet moves to v2.
	f.commit("fleet on v2", map[string]string{"fleet.yaml": f.fleetYAML(v2, "")})
	if reboots := h.converge(5); reboots != 1 {
		t.Fatalf("moving to v2 took %d reboots, want exactly 1", reboots)
	}
	if got := h.booted(); got != digestOf(v2) {
		t.Fatalf("booted %s, want v2 %s", got, digestOf(v2))
	}
	if st := h.status(); st.Health == nil || !st.Health.Passed || st.Health.Digest != digestOf(v2) {
		t.Fatalf("health after the update = %+v, want a passed verification of v2", st.Health)
	}
	if got := verbs(h.calls()); !slices.ContainsFunc(got, func(c string) bool {
		return strings.HasPrefix(c, "switch ") && strings.Contains(c, " --enforce-container-sigpolicy") && strings.HasSuffix(c, " "+v2)
	}) {
		t.Fatalf("bootc calls %q: want a switch to exactly %s with signature enforcement", got, v2)
	}

	// Revert: v1 is the rollback deployment, so bootc rollback brings it
	// back with no download.
	before := len(h.calls())
	f.repo.Revert("HEAD")
	f.repo.Push()
	if reboots := h.converge(5); reboots != 1 {
		t.Fatalf("the revert took %d reboots, want exactly 1", reboots)
	}
	if got := h.booted(); got != digestOf(v1) {
		t.Fatalf("after the revert booted %s, want v1 %s", got, digestOf(v1))
	}
	after := h.calls()[before:]
	if got := verbs(after); !slices.Contains(got, "rollback") || slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "switch") }) {
		t.Fatalf("bootc calls for the revert = %q, want a rollback and no switch", got)
	}
	for _, c := range after {
		if c.Pulled {
			t.Fatalf("the revert pulled from the registry: %v", c.Argv)
		}
	}
	// bootc rollback does not carry /etc; the agent re-applied it.
	if got, _ := h.etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("/etc/motd after the rollback = %q", got)
	}
}

// Per-host overrides: one host gets its own image and file, the other
// keeps the fleet's.
func TestPerHostOverride(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.image("v2", bootcsim.ImageOptions{}, true)
	f.commit("fleet", map[string]string{
		"fleet.yaml": f.fleetYAML(v1, ""),
		"hosts/web-02.yaml": hostYAML("web-02", `spec:
  image: `+v2+`
  etc:
    - {path: /etc/web-02.conf, content: "only on web-02\n", mode: "0600"}
`),
	})
	web1 := f.newHost("web-01", v1, hostOptions{})
	web2 := f.newHost("web-02", v1, hostOptions{})
	web1.converge(3)
	if r := web2.converge(5); r != 1 {
		t.Fatalf("web-02 rebooted %d times, want 1", r)
	}
	if web1.booted() != digestOf(v1) || web2.booted() != digestOf(v2) {
		t.Fatalf("booted web-01 %s web-02 %s, want v1 and v2", web1.booted(), web2.booted())
	}
	if _, ok := web1.etc("web-02.conf"); ok {
		t.Fatal("web-01 got web-02's file")
	}
	if got, _ := web2.etc("web-02.conf"); got != "only on web-02\n" {
		t.Fatalf("web-02.conf = %q", got)
	}
	if st, err := os.Stat(filepath.Join(web2.sim.Root, "etc/web-02.conf")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("web-02.conf mode: %v %v", st, err)
	}
}

// /etc: added, changed and pruned files follow the repo; a local edit of a
// managed file is reported as drift and corrected; a file that left the
// spec but was edited locally is reported and left alone.
func TestEtcAddChangePruneAndDrift(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	hostWith := func(files string) string { return hostYAML("web-01", "spec:\n  etc:\n"+files) }
	f.commit("add", map[string]string{"fleet.yaml": f.fleetYAML(v1, ""), "hosts/web-01.yaml": hostWith(
		"    - {path: /etc/app/a.conf, content: \"a1\\n\"}\n    - {path: /etc/app/b.conf, content: \"b1\\n\"}\n")})
	h := f.newHost("web-01", v1, hostOptions{})
	h.mustPass()
	for rel, want := range map[string]string{"app/a.conf": "a1\n", "app/b.conf": "b1\n"} {
		if got, _ := h.etc(rel); got != want {
			t.Fatalf("%s = %q, want %q", rel, got, want)
		}
	}

	// Change a.conf, drop b.conf.
	f.commit("change and prune", map[string]string{"hosts/web-01.yaml": hostWith("    - {path: /etc/app/a.conf, content: \"a2\\n\"}\n")})
	h.mustPass()
	if got, _ := h.etc("app/a.conf"); got != "a2\n" {
		t.Fatalf("a.conf = %q, want a2", got)
	}
	if _, ok := h.etc("app/b.conf"); ok {
		t.Fatal("b.conf left the spec but was not pruned")
	}

	// Drift: someone edits a managed file on the host.
	h.sim.WriteEtc(t, "app/a.conf", "edited by hand\n")
	h.pass()
	st := h.status()
	if !slices.ContainsFunc(st.Drift, func(d reconcile.DriftStatus) bool { return d.Path == "/etc/app/a.conf" }) {
		t.Fatalf("drift = %+v, want /etc/app/a.conf reported", st.Drift)
	}
	if got, _ := h.etc("app/a.conf"); got != "a2\n" {
		t.Fatalf("drift was not corrected: a.conf = %q", got)
	}

	// A locally edited file that leaves the spec is left alone.
	h.sim.WriteEtc(t, "app/a.conf", "keep me\n")
	f.commit("drop a", map[string]string{"hosts/web-01.yaml": hostYAML("web-01", "spec: {}\n")})
	h.pass()
	if got, _ := h.etc("app/a.conf"); got != "keep me\n" {
		t.Fatalf("a locally edited file was pruned: %q", got)
	}
	if st := h.status(); !slices.ContainsFunc(st.Drift, func(d reconcile.DriftStatus) bool { return d.Path == "/etc/app/a.conf" }) {
		t.Fatalf("drift = %+v, want the kept file reported", st.Drift)
	}
}

// An unsigned image, or one signed by a key the host does not trust, is
// refused before anything changes: no bootc mutation and no /etc write.
func TestUntrustedImagesAreRefusedAndTheHostIsUntouched(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	f.commit("v1", map[string]string{"fleet.yaml": f.fleetYAML(v1, "")})
	h := f.newHost("web-01", v1, hostOptions{})
	h.mustPass()

	other, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := f.image("unsigned", bootcsim.ImageOptions{}, false)
	wrongKey := f.image("wrong-key", bootcsim.ImageOptions{}, false)
	if err := other.Sign(t.Context(), wrongKey); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ image, reason string }{{unsigned, "no-signature"}, {wrongKey, "bad-signature"}} {
		before := len(h.calls())
		yaml := strings.Replace(f.fleetYAML(tc.image, ""), "pool pool.ntp.org", "pool changed.example.com", 1)
		f.commit("try "+tc.reason, map[string]string{"fleet.yaml": yaml})
		r := h.pass()
		if r.exit == 0 || r.killed {
			t.Fatalf("%s: pass accepted the image: %s", tc.reason, r)
		}
		st := h.status()
		if st.LastError == nil || st.LastError.Reason != tc.reason {
			t.Fatalf("%s: last error %+v, want reason %q", tc.reason, st.LastError, tc.reason)
		}
		if got := verbs(h.calls()[before:]); len(got) != 0 {
			t.Fatalf("%s: bootc was asked to change the host: %q", tc.reason, got)
		}
		if got, _ := h.etc("chrony.conf"); got != "pool pool.ntp.org iburst\n" {
			t.Fatalf("%s: /etc changed although the commit was refused: %q", tc.reason, got)
		}
		if h.booted() != digestOf(v1) || h.boots() != 0 {
			t.Fatalf("%s: host changed: booted %s, boots %d", tc.reason, h.booted(), h.boots())
		}
	}
}

// A broken commit is never applied; the next good commit is.
func TestBrokenCommitIsIgnoredUntilFixed(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.image("v2", bootcsim.ImageOptions{}, true)
	f.commit("v1", map[string]string{"fleet.yaml": f.fleetYAML(v1, "")})
	h := f.newHost("web-01", v1, hostOptions{})
	h.mustPass()

	broken := strings.Replace(f.fleetYAML(v2, ""), "  etc:", "  ect:", 1)
	f.commit("typo", map[string]string{"fleet.yaml": broken})
	for range 2 {
		r := h.pass()
		if r.exit == 0 || !strings.Contains(r.stderr, `fleet.yaml:`) || !strings.Contains(r.stderr, "ect") {
			t.Fatalf("a broken commit: %s", r)
		}
	}
	if st := h.status(); st.LastError == nil || st.LastError.Reason != "invalid-repo" {
		t.Fatalf("last error = %+v, want invalid-repo", st.LastError)
	}
	if h.booted() != digestOf(v1) || len(verbs(h.calls())) != 0 {
		t.Fatalf("the broken commit changed the host: booted %s calls %q", h.booted(), verbs(h.calls()))
	}
	f.commit("fix", map[string]string{"fleet.yaml": f.fleetYAML(v2, "")})
	h.converge(5)
	if h.booted() != digestOf(v2) {
		t.Fatalf("after the fix booted %s, want v2", h.booted())
	}
}

// A force-push that rewinds history is refused (a rollback attack); an
// operator can accept one such commit explicitly.
func TestForcePushIsRefusedUnlessAllowedOnce(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	c1 := f.commit("v1", map[string]string{"fleet.yaml": f.fleetYAML(v1, "")})
	f.commit("motd", map[string]string{"fleet.yaml": strings.Replace(f.fleetYAML(v1, ""), "is managed", "is run", 1)})
	h := f.newHost("web-01", v1, hostOptions{})
	h.mustPass()
	rewritten := f.repo.ForcePush(c1)
	r := h.pass()
	if r.exit == 0 || h.status().LastError.Reason != "git-not-fast-forward" {
		t.Fatalf("force-push accepted: %s\nlast error %+v", r, h.status().LastError)
	}
	if got, _ := h.etc("motd"); got != "web-01 is run by bootsync\n" {
		t.Fatalf("motd changed after a refused force-push: %q", got)
	}
	r = h.run(nil, "reconcile", "--config", h.config, "--allow-reset", rewritten)
	if r.exit != 0 {
		t.Fatalf("reconcile --allow-reset: %s", r)
	}
	if got, _ := h.etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("motd after the allowed reset: %q", got)
	}
}

// The registry is down: the pass fails with its reason after retrying,
// nothing changes, and the host converges once it is back.
func TestRegistryDownChangesNothing(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	f.image("v2", bootcsim.ImageOptions{}, true)
	f.commit("v1", map[string]string{"fleet.yaml": f.fleetYAML(v1, "")})
	h := f.newHost("web-01", v1, hostOptions{})
	h.mustPass()
	f.commit("v2 by tag", map[string]string{"fleet.yaml": f.fleetYAML(f.tagRef("v2"), "")})
	f.reg.Down()
	r := h.pass()
	if r.exit == 0 {
		t.Fatalf("pass succeeded with the registry down: %s", r)
	}
	if st := h.status(); st.LastError == nil || !strings.HasPrefix(st.LastError.Reason, "registry-") {
		t.Fatalf("last error = %+v, want a registry reason", st.LastError)
	}
	if h.booted() != digestOf(v1) || len(verbs(h.calls())) != 0 {
		t.Fatalf("host changed while the registry was down: %q", verbs(h.calls()))
	}
	if err := f.reg.Up(); err != nil {
		t.Fatal(err)
	}
	h.converge(5)
	if h.booted() == digestOf(v1) {
		t.Fatal("host did not move to v2 once the registry was back")
	}
}

// A pass with nothing to do asks Git once and the registry never, for a
// digest-pinned or locked image.
func TestNoopPassRequests(t *testing.T) {
	f := newFleet(t)
	v1 := f.image("v1", bootcsim.ImageOptions{}, true)
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"digest-pinned", map[string]string{"fleet.yaml": f.fleetYAML(v1, "")}},
		{"locked tag", map[string]string{
			"fleet.yaml":    f.fleetYAML(f.tagRef("v1"), ""),
			"bootsync.lock": "apiVersion: bootsync.dev/v1alpha1\nkind: Lock\nimages:\n  " + f.tagRef("v1") + ": " + digestOf(v1) + "\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.commit(tc.name, tc.files)
			h := f.newHost("web-01", v1, hostOptions{})
			h.converge(3)
			f.git.Reset()
			f.reg.Reset()
			h.mustPass()
			if n := f.git.Count(); n != 1 {
				t.Fatalf("a no-op pass made %d Git requests (%v), want 1", n, f.git.Requests())
			}
			if n := len(f.reg.Requests()); n != 0 {
				t.Fatalf("a no-op pass made %d registry requests (%v), want 0", n, f.reg.Requests())
			}
		})
	}
}
