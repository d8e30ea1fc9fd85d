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
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{Version: "2"}, true)
	f.Commit("fleet on v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})

	// The host already runs v1: the first pass only writes /etc.
	h.MustPass()
	if got, _ := h.Etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("/etc/motd = %q", got)
	}
	if h.Boots() != 0 || len(verbs(h.Calls())) != 0 {
		t.Fatalf("a host already on the desired image was changed: boots %d, bootc calls %q", h.Boots(), verbs(h.Calls()))
	}

	// Merge: the fleet moves to v2.
	f.Commit("fleet on v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, "")})
	if reboots := h.Converge(5); reboots != 1 {
		t.Fatalf("moving to v2 took %d reboots, want exactly 1", reboots)
	}
	if got := h.Booted(); got != digestOf(v2) {
		t.Fatalf("booted %s, want v2 %s", got, digestOf(v2))
	}
	if st := h.Status(); st.Health == nil || !st.Health.Passed || st.Health.Digest != digestOf(v2) {
		t.Fatalf("health after the update = %+v, want a passed verification of v2", st.Health)
	}
	if got := verbs(h.Calls()); !slices.ContainsFunc(got, func(c string) bool {
		return strings.HasPrefix(c, "switch ") && strings.Contains(c, " --enforce-container-sigpolicy") && strings.HasSuffix(c, " "+v2)
	}) {
		t.Fatalf("bootc calls %q: want a switch to exactly %s with signature enforcement", got, v2)
	}

	// Revert: v1 is the rollback deployment, so bootc rollback brings it
	// back with no download.
	before := len(h.Calls())
	f.Repo.Revert("HEAD")
	f.Repo.Push()
	if reboots := h.Converge(5); reboots != 1 {
		t.Fatalf("the revert took %d reboots, want exactly 1", reboots)
	}
	if got := h.Booted(); got != digestOf(v1) {
		t.Fatalf("after the revert booted %s, want v1 %s", got, digestOf(v1))
	}
	after := h.Calls()[before:]
	if got := verbs(after); !slices.Contains(got, "rollback") || slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "switch") }) {
		t.Fatalf("bootc calls for the revert = %q, want a rollback and no switch", got)
	}
	for _, c := range after {
		if c.Pulled {
			t.Fatalf("the revert pulled from the registry: %v", c.Argv)
		}
	}
	// bootc rollback does not carry /etc; the agent re-applied it.
	if got, _ := h.Etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("/etc/motd after the rollback = %q", got)
	}
}

// Per-host overrides: one host gets its own image and file, the other
// keeps the fleet's.
func TestPerHostOverride(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	f.Commit("fleet", map[string]string{
		"fleet.yaml": f.FleetYAML(v1, ""),
		"hosts/web-02.yaml": hostYAML("web-02", `spec:
  image: `+v2+`
  etc:
    - {path: /etc/web-02.conf, content: "only on web-02\n", mode: "0600"}
`),
	})
	web1 := f.NewHost("web-01", v1, hostOptions{})
	web2 := f.NewHost("web-02", v1, hostOptions{})
	web1.Converge(3)
	if r := web2.Converge(5); r != 1 {
		t.Fatalf("web-02 rebooted %d times, want 1", r)
	}
	if web1.Booted() != digestOf(v1) || web2.Booted() != digestOf(v2) {
		t.Fatalf("booted web-01 %s web-02 %s, want v1 and v2", web1.Booted(), web2.Booted())
	}
	if _, ok := web1.Etc("web-02.conf"); ok {
		t.Fatal("web-01 got web-02's file")
	}
	if got, _ := web2.Etc("web-02.conf"); got != "only on web-02\n" {
		t.Fatalf("web-02.conf = %q", got)
	}
	if st, err := os.Stat(filepath.Join(web2.Sim.Root, "etc/web-02.conf")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("web-02.conf mode: %v %v", st, err)
	}
}

// /etc: added, changed and pruned files follow the repo; a local edit of a
// managed file is reported as drift and corrected; a file that left the
// spec but was edited locally is reported and left alone.
func TestEtcAddChangePruneAndDrift(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	hostWith := func(files string) string { return hostYAML("web-01", "spec:\n  etc:\n"+files) }
	f.Commit("add", map[string]string{"fleet.yaml": f.FleetYAML(v1, ""), "hosts/web-01.yaml": hostWith(
		"    - {path: /etc/app/a.conf, content: \"a1\\n\"}\n    - {path: /etc/app/b.conf, content: \"b1\\n\"}\n")})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()
	for rel, want := range map[string]string{"app/a.conf": "a1\n", "app/b.conf": "b1\n"} {
		if got, _ := h.Etc(rel); got != want {
			t.Fatalf("%s = %q, want %q", rel, got, want)
		}
	}

	// Change a.conf, drop b.conf.
	f.Commit("change and prune", map[string]string{"hosts/web-01.yaml": hostWith("    - {path: /etc/app/a.conf, content: \"a2\\n\"}\n")})
	h.MustPass()
	if got, _ := h.Etc("app/a.conf"); got != "a2\n" {
		t.Fatalf("a.conf = %q, want a2", got)
	}
	if _, ok := h.Etc("app/b.conf"); ok {
		t.Fatal("b.conf left the spec but was not pruned")
	}

	// Drift: someone edits a managed file on the host.
	h.Sim.WriteEtc(t, "app/a.conf", "edited by hand\n")
	h.Pass()
	st := h.Status()
	if !slices.ContainsFunc(st.Drift, func(d reconcile.DriftStatus) bool { return d.Path == "/etc/app/a.conf" }) {
		t.Fatalf("drift = %+v, want /etc/app/a.conf reported", st.Drift)
	}
	if got, _ := h.Etc("app/a.conf"); got != "a2\n" {
		t.Fatalf("drift was not corrected: a.conf = %q", got)
	}

	// A locally edited file that leaves the spec is left alone.
	h.Sim.WriteEtc(t, "app/a.conf", "keep me\n")
	f.Commit("drop a", map[string]string{"hosts/web-01.yaml": hostYAML("web-01", "spec: {}\n")})
	h.Pass()
	if got, _ := h.Etc("app/a.conf"); got != "keep me\n" {
		t.Fatalf("a locally edited file was pruned: %q", got)
	}
	if st := h.Status(); !slices.ContainsFunc(st.Drift, func(d reconcile.DriftStatus) bool { return d.Path == "/etc/app/a.conf" }) {
		t.Fatalf("drift = %+v, want the kept file reported", st.Drift)
	}
}

// An unsigned image, or one signed by a key the host does not trust, is
// refused before anything changes: no bootc mutation and no /etc write.
func TestUntrustedImagesAreRefusedAndTheHostIsUntouched(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()

	other, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := f.Image("unsigned", bootcsim.ImageOptions{}, false)
	wrongKey := f.Image("wrong-key", bootcsim.ImageOptions{}, false)
	if err := other.Sign(t.Context(), wrongKey); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ image, reason string }{{unsigned, "no-signature"}, {wrongKey, "bad-signature"}} {
		before := len(h.Calls())
		yaml := strings.Replace(f.FleetYAML(tc.image, ""), "pool pool.ntp.org", "pool changed.example.com", 1)
		f.Commit("try "+tc.reason, map[string]string{"fleet.yaml": yaml})
		r := h.Pass()
		if r.Exit == 0 || r.Killed {
			t.Fatalf("%s: pass accepted the image: %s", tc.reason, r)
		}
		st := h.Status()
		if st.LastError == nil || string(st.LastError.Reason) != tc.reason {
			t.Fatalf("%s: last error %+v, want reason %q", tc.reason, st.LastError, tc.reason)
		}
		if got := verbs(h.Calls()[before:]); len(got) != 0 {
			t.Fatalf("%s: bootc was asked to change the host: %q", tc.reason, got)
		}
		if got, _ := h.Etc("chrony.conf"); got != "pool pool.ntp.org iburst\n" {
			t.Fatalf("%s: /etc changed although the commit was refused: %q", tc.reason, got)
		}
		if h.Booted() != digestOf(v1) || h.Boots() != 0 {
			t.Fatalf("%s: host changed: booted %s, boots %d", tc.reason, h.Booted(), h.Boots())
		}
	}
}

// A broken commit is never applied; the next good commit is.
func TestBrokenCommitIsIgnoredUntilFixed(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()

	broken := strings.Replace(f.FleetYAML(v2, ""), "  etc:", "  ect:", 1)
	f.Commit("typo", map[string]string{"fleet.yaml": broken})
	for range 2 {
		r := h.Pass()
		if r.Exit == 0 || !strings.Contains(r.Stderr, `fleet.yaml:`) || !strings.Contains(r.Stderr, "ect") {
			t.Fatalf("a broken commit: %s", r)
		}
	}
	if st := h.Status(); st.LastError == nil || st.LastError.Reason != "invalid-repo" {
		t.Fatalf("last error = %+v, want invalid-repo", st.LastError)
	}
	if h.Booted() != digestOf(v1) || len(verbs(h.Calls())) != 0 {
		t.Fatalf("the broken commit changed the host: booted %s calls %q", h.Booted(), verbs(h.Calls()))
	}
	f.Commit("fix", map[string]string{"fleet.yaml": f.FleetYAML(v2, "")})
	h.Converge(5)
	if h.Booted() != digestOf(v2) {
		t.Fatalf("after the fix booted %s, want v2", h.Booted())
	}
}

// A mistake in one host's file holds back that host only: every agent
// decodes its own host file, not the fleet's 100,000.
func TestBrokenHostFileHoldsBackOnlyItsHost(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	web1 := f.NewHost("web-01", v1, hostOptions{})
	web2 := f.NewHost("web-02", v1, hostOptions{})
	web1.MustPass()
	web2.MustPass()

	f.Commit("v2, and a typo in web-02's file", map[string]string{
		"fleet.yaml":        f.FleetYAML(v2, ""),
		"hosts/web-02.yaml": hostYAML("web-02", "spec:\n  ect: []\n"),
	})
	if r := web1.Converge(5); r != 1 || web1.Booted() != digestOf(v2) {
		t.Fatalf("web-01: %d reboots, booted %s; want 1 and v2", r, web1.Booted())
	}
	r := web2.Pass()
	if r.Exit == 0 || !strings.Contains(r.Stderr, "hosts/web-02.yaml:") || !strings.Contains(r.Stderr, "ect") {
		t.Fatalf("web-02 with a broken file: %s", r)
	}
	if st := web2.Status(); st.LastError == nil || st.LastError.Reason != "invalid-repo" {
		t.Fatalf("web-02 last error = %+v, want invalid-repo", st.LastError)
	}
	if web2.Booted() != digestOf(v1) || web2.Boots() != 0 {
		t.Fatalf("web-02 changed although its file is broken: booted %s, boots %d", web2.Booted(), web2.Boots())
	}
}

// A force-push that rewinds history is refused (a rollback attack); an
// operator can accept one such commit explicitly.
func TestForcePushIsRefusedUnlessAllowedOnce(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	c1 := f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	f.Commit("motd", map[string]string{"fleet.yaml": strings.Replace(f.FleetYAML(v1, ""), "is managed", "is run", 1)})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()
	rewritten := f.Repo.ForcePush(c1)
	r := h.Pass()
	if r.Exit == 0 || h.Status().LastError.Reason != "git-not-fast-forward" {
		t.Fatalf("force-push accepted: %s\nlast error %+v", r, h.Status().LastError)
	}
	if got, _ := h.Etc("motd"); got != "web-01 is run by bootsync\n" {
		t.Fatalf("motd changed after a refused force-push: %q", got)
	}
	r = h.Run(nil, "reconcile", "--config", h.Config, "--allow-reset", rewritten)
	if r.Exit != 0 {
		t.Fatalf("reconcile --allow-reset: %s", r)
	}
	if got, _ := h.Etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("motd after the allowed reset: %q", got)
	}
}

// The registry is down: the pass fails with its reason after retrying,
// nothing changes, and the host converges once it is back.
func TestRegistryDownChangesNothing(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	f.Image("v2", bootcsim.ImageOptions{}, true)
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	h.MustPass()
	f.Commit("v2 by tag", map[string]string{"fleet.yaml": f.FleetYAML(f.TagRef("v2"), "")})
	f.Registry.Down()
	r := h.Pass()
	if r.Exit == 0 {
		t.Fatalf("pass succeeded with the registry down: %s", r)
	}
	if st := h.Status(); st.LastError == nil || !strings.HasPrefix(string(st.LastError.Reason), "registry-") {
		t.Fatalf("last error = %+v, want a registry reason", st.LastError)
	}
	if h.Booted() != digestOf(v1) || len(verbs(h.Calls())) != 0 {
		t.Fatalf("host changed while the registry was down: %q", verbs(h.Calls()))
	}
	if err := f.Registry.Up(); err != nil {
		t.Fatal(err)
	}
	h.Converge(5)
	if h.Booted() == digestOf(v1) {
		t.Fatal("host did not move to v2 once the registry was back")
	}
}

// A pass with nothing to do asks Git once and the registry never, for a
// digest-pinned or locked image.
func TestNoopPassRequests(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"digest-pinned", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")}},
		{"locked tag", map[string]string{
			"fleet.yaml":    f.FleetYAML(f.TagRef("v1"), ""),
			"bootsync.lock": "apiVersion: bootsync.dev/v1alpha1\nkind: Lock\nimages:\n  " + f.TagRef("v1") + ": " + digestOf(v1) + "\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.Commit(tc.name, tc.files)
			h := f.NewHost("web-01", v1, hostOptions{})
			h.Converge(3)
			f.Git.Reset()
			f.Registry.Reset()
			h.MustPass()
			if n := f.Git.Count(); n != 1 {
				t.Fatalf("a no-op pass made %d Git requests (%v), want 1", n, f.Git.Requests())
			}
			if n := len(f.Registry.Requests()); n != 0 {
				t.Fatalf("a no-op pass made %d registry requests (%v), want 0", n, f.Registry.Requests())
			}
		})
	}
}
