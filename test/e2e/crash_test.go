package e2e

import (
	"strings"
	"testing"

	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleetlockserver"
	"github.com/bootsync/bootsync/test/fleettest"
)

// crashThenConverge runs passes with the agent set to kill itself (like a
// power cut: no deferred code runs) at point, until that happens once, then
// runs normal passes until the host converges. It returns the reboots seen
// in total.
func crashThenConverge(t *testing.T, h *fleettest.Host, point string) int {
	t.Helper()
	reboots := 0
	fired := false
	for range 6 {
		boots := h.Boots()
		r := h.Pass("BOOTSYNC_FAULT_POINT=" + point)
		rebooted := h.Boots() != boots
		if rebooted {
			reboots++
		}
		if r.Killed && !rebooted {
			fired = true
			break
		}
		if !r.Killed && r.Exit != 0 {
			t.Fatalf("pass before the crash at %s failed: %s", point, r)
		}
	}
	if !fired {
		t.Fatalf("the agent never reached fault point %s", point)
	}
	before := h.Boots()
	h.Converge(6)
	return reboots + h.Boots() - before
}

// Kill the agent at every step of an update pass: the next passes converge
// on the new image and /etc with exactly one reboot, and nothing is lost.
func TestCrashAtEveryStepOfAnUpdate(t *testing.T) {
	points := []string{"observed", "resolved", "gated", "before-write-etc", "after-write-etc",
		"before-switch", "after-switch", "before-reboot", "before-verify", "after-verify"}
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
	base := f.FleetYAML(v1, "")
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			f.Commit("back to v1", map[string]string{"fleet.yaml": base})
			h := f.NewHost("web-01", v1, hostOptions{})
			h.T = t
			h.MustPass()
			update := strings.Replace(f.FleetYAML(v2, ""), "pool pool.ntp.org", "pool "+point+".example.com", 1)
			f.Commit("v2 and a new NTP pool", map[string]string{"fleet.yaml": update})

			if reboots := crashThenConverge(t, h, point); reboots != 1 {
				t.Fatalf("crash at %s: %d reboots for one update, want exactly 1", point, reboots)
			}
			if h.Booted() != digestOf(v2) {
				t.Fatalf("crash at %s: booted %s, want v2", point, h.Booted())
			}
			if got, _ := h.Etc("chrony.conf"); got != "pool "+point+".example.com iburst\n" {
				t.Fatalf("crash at %s: chrony.conf = %q", point, got)
			}
			j := h.Journal()
			if j.Pending != nil || j.Intent != nil || len(j.Quarantine) != 0 {
				t.Fatalf("crash at %s: journal not settled: pending %+v intent %+v quarantine %v", point, j.Pending, j.Intent, j.Quarantine)
			}
			if st := h.Status(); st.Health == nil || !st.Health.Passed {
				t.Fatalf("crash at %s: the update was not verified: %+v", point, st.Health)
			}
		})
	}
}

// Kill the agent around the rollback of a `git revert`: it still rolls
// back exactly once, and never toggles the queued rollback away.
func TestCrashAroundRevertRollback(t *testing.T) {
	for _, point := range []string{"before-rollback", "after-rollback", "before-reboot"} {
		t.Run(point, func(t *testing.T) {
			f := newFleet(t)
			v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
			v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
			f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
			h := f.NewHost("web-01", v1, hostOptions{})
			h.MustPass()
			f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, "")})
			h.Converge(5)
			f.Repo.Revert("HEAD")
			f.Repo.Push()
			if reboots := crashThenConverge(t, h, point); reboots != 1 {
				t.Fatalf("crash at %s: %d reboots for the revert, want 1", point, reboots)
			}
			if h.Booted() != digestOf(v1) {
				t.Fatalf("crash at %s: booted %s, want v1", point, h.Booted())
			}
		})
	}
}

// Kill the agent around the steps only a reboot policy needs: locking the
// staged image while the window is closed, and taking a FleetLock slot.
func TestCrashAroundRebootPolicySteps(t *testing.T) {
	closed, open := "BOOTSYNC_TEST_NOW=2026-11-28T12:00:00+09:00", "BOOTSYNC_TEST_NOW=2026-11-30T01:30:00+09:00"
	window := `reboot: window
windows: [{days: [mon], start: "01:00", duration: 2h, timezone: Asia/Seoul}]`
	for _, tc := range []struct {
		point, policy string
		now           string
	}{
		{"before-lock-staged", window, closed},
		{"after-lock-staged", window, closed},
		{"before-acquire-lock", "fleetlock", ""},
		{"after-acquire-lock", "fleetlock", ""},
	} {
		t.Run(tc.point, func(t *testing.T) {
			f := newFleet(t)
			policy := tc.policy
			var lock *fleetlockserver.Server
			if policy == "fleetlock" {
				lock = fleetlockserver.Start(t, map[string]int{"default": 1})
				policy = "reboot: fleetlock\nfleetlock: {url: \"" + lock.URL() + "\"}"
			}
			v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
			v2 := f.Image("v2", bootcsim.ImageOptions{}, true)
			f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, policy)})
			h := f.NewHost("web-01", v1, hostOptions{})
			writeMachineID(t, h, 1)
			h.MustPass()
			f.Commit("v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, policy)})
			env := []string{"BOOTSYNC_FAULT_POINT=" + tc.point}
			if tc.now != "" {
				env = append(env, tc.now)
			}
			if r := h.Pass(env...); !r.Killed || h.Boots() != 0 {
				t.Fatalf("the fault at %s did not fire before any reboot: %s", tc.point, r)
			}
			// Then the pass the policy allows, and the verification.
			reboots := 0
			for range 5 {
				var extra []string
				if tc.now != "" {
					extra = append(extra, open)
				}
				r := h.Pass(extra...)
				if r.Killed {
					reboots++
					continue
				}
				if h.Status().LastPass.State == "converged" {
					break
				}
			}
			if reboots != 1 || h.Booted() != digestOf(v2) {
				t.Fatalf("crash at %s: %d reboots, booted %s; want 1 and v2", tc.point, reboots, h.Booted())
			}
			if lock != nil && len(lock.Holders("default")) != 0 {
				t.Fatalf("crash at %s: the slot is still held after the verified update", tc.point)
			}
		})
	}
}
