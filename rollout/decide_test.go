package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/hostspec"
)

// The rollout's policy as a table: a wave advances only when every host
// runs the wave's commit converged and the soak has passed since the last
// of them got there; failures beyond the budget halt it; a pass error
// (registry outage) only holds the wave back.
func TestDecide(t *testing.T) {
	const wave, older = "cccccccccccccccccccccccccccccccccccccccc", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	policy := &hostspec.Rollout{Group: "next", Waves: []hostspec.Wave{{Bucket: "0-9", Soak: time.Hour}, {Bucket: "0-99"}}}
	ok := func(name string, since time.Time) fleetstatus.Host {
		return fleetstatus.Host{Host: name, Reporting: true, Seen: true, State: "converged", StateSince: since, Result: "ok",
			Desired: fleetstatus.Image{Digest: "sha256:new", Commit: wave}, Booted: fleetstatus.Image{Digest: "sha256:new", Commit: wave}}
	}
	quarantined := ok("b", start)
	quarantined.State, quarantined.Booted.Digest = "quarantined", "sha256:old"
	quarantined.Quarantined = []fleetstatus.Quarantined{{Digest: "sha256:new", Check: "web"}}
	outage := ok("b", start)
	outage.Result, outage.Reason = "error", "registry-unreachable"
	behind := ok("b", start)
	behind.Desired.Commit = older
	stopped := ok("b", start)
	stopped.Reporting = false
	for _, tc := range []struct {
		name   string
		hosts  []fleetstatus.Host
		now    time.Time
		budget hostspec.FailureBudget
		want   string
		why    string
		names  []string // the wave's hosts; default a and b
	}{
		{"soaked", []fleetstatus.Host{ok("a", start), ok("b", start.Add(10*time.Minute))}, start.Add(71 * time.Minute), hostspec.FailureBudget{}, ActionAdvance, "", nil},
		{"soaking since the last host converged", []fleetstatus.Host{ok("a", start), ok("b", start.Add(30*time.Minute))}, start.Add(61 * time.Minute), hostspec.FailureBudget{}, ActionWait, "soaking", nil},
		{"quarantined beyond the budget", []fleetstatus.Host{ok("a", start), quarantined}, start.Add(2 * time.Hour), hostspec.FailureBudget{}, ActionHalt, "quarantined sha256:new", nil},
		{"quarantined within the budget", []fleetstatus.Host{ok("a", start), quarantined}, start.Add(2 * time.Hour), hostspec.FailureBudget{Count: 1}, ActionAdvance, "", nil},
		{"a pass error holds the wave", []fleetstatus.Host{ok("a", start), outage}, start.Add(2 * time.Hour), hostspec.FailureBudget{}, ActionWait, "last pass failed: registry-unreachable", nil},
		{"a host still on an older commit", []fleetstatus.Host{ok("a", start), behind}, start.Add(2 * time.Hour), hostspec.FailureBudget{}, ActionWait, "has not fetched the wave's commit", nil},
		{"a host not reporting", []fleetstatus.Host{ok("a", start), stopped}, start.Add(2 * time.Hour), hostspec.FailureBudget{}, ActionWait, "not reporting", nil},
		{"a host that never reported", []fleetstatus.Host{ok("a", start)}, start.Add(2 * time.Hour), hostspec.FailureBudget{}, ActionWait, "never reported", nil},
		{"a wave without hosts proves nothing", nil, start.Add(2 * time.Hour), hostspec.FailureBudget{}, ActionWait, "no host of group next", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := *policy
			p.FailureBudget = tc.budget
			names := tc.names
			if names == nil {
				names = []string{"a", "b"}
			}
			d := Decide(Situation{Policy: &p, Wave: 0, WaveCommit: wave, WaveTime: start, Hosts: names,
				Status: &fleetstatus.Fleet{Hosts: tc.hosts}, Includes: func(c string) bool { return c == wave }, Now: tc.now})
			if d.Action != tc.want {
				t.Fatalf("decided %s (%s), want %s", d.Action, d.Summary, tc.want)
			}
			all := d.Summary
			for _, n := range append(d.Failed, d.Pending...) {
				all += "\n" + n.Host + ": " + n.Why
			}
			if !strings.Contains(all, tc.why) {
				t.Errorf("decision %q does not say %q", all, tc.why)
			}
			if tc.want == ActionAdvance && d.Next != 2 {
				t.Errorf("advance to wave %d, want 2", d.Next)
			}
		})
	}
}
