package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/test/bootcsim"
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
