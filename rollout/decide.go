// Package rollout is `bootsync rollout`: a job for CI or a timer that
// widens one group's bucket range wave by wave, as fleet.yaml's rollout
// policy says, once the current wave has soaked healthy in the agents'
// metrics (read through Prometheus), and halts the rollout as soon as more
// hosts fail than its budget allows. Every decision is an ordinary commit
// pushed fast-forward only, so two runs racing cannot both advance.
package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/hostspec"
)

// Actions a run can take.
const (
	ActionAdvance = "advance" // committed the next wave
	ActionHalt    = "halt"    // committed the halt
	ActionWait    = "wait"    // the wave is not healthy yet, or still soaking
	ActionDone    = "done"    // the last wave soaked healthy
	ActionHalted  = "halted"  // an earlier run halted it; nothing to do
	ActionNone    = "none"    // no rollout in progress
)

// Situation is what a decision is made from.
type Situation struct {
	Policy *hostspec.Rollout
	// Wave is the index in Policy.Waves of the group's current bucket range.
	Wave int
	// WaveCommit is the last commit that changed the group's file, and
	// WaveTime its commit time: the wave started then.
	WaveCommit string
	WaveTime   time.Time
	// Hosts are the hosts the group selects at the current wave.
	Hosts []string
	// Status is every host's last report.
	Status *fleetstatus.Fleet
	// Includes says whether commit descends from (or is) WaveCommit.
	Includes func(commit string) bool
	Now      time.Time
}

// Decision is what a run decided, and why.
type Decision struct {
	Action string `json:"action"`
	Group  string `json:"group,omitempty"`
	// Wave is the current wave (1-based); Next the wave committed.
	Wave    int    `json:"wave,omitempty"`
	Waves   int    `json:"waves,omitempty"`
	Next    int    `json:"next,omitempty"`
	Summary string `json:"summary"`
	// Failed and Pending list hosts with the reason.
	Failed  []HostNote `json:"failed"`
	Pending []HostNote `json:"pending"`
	Healthy []string   `json:"healthy"`
	// SoakLeft is how long the wave still has to soak.
	SoakLeft time.Duration `json:"soakLeft,omitempty"`
	// Commit is the commit this run pushed, if any.
	Commit string `json:"commit,omitempty"`
	// Branch is where it was pushed.
	Branch string `json:"branch,omitempty"`
}

// HostNote is a host and what is wrong or still missing.
type HostNote struct {
	Host string `json:"host"`
	Why  string `json:"why"`
}

// Decide is the rollout's policy as a pure function of the situation.
func Decide(s Situation) Decision {
	p := s.Policy
	d := Decision{Group: p.Group, Wave: s.Wave + 1, Waves: len(p.Waves), Failed: []HostNote{}, Pending: []HostNote{}, Healthy: []string{}}
	soakFrom := s.WaveTime
	for _, name := range s.Hosts {
		h, ok := s.Status.Host(name)
		if !ok {
			d.Pending = append(d.Pending, HostNote{Host: name, Why: "never reported"})
			continue
		}
		if why := failure(h, s.Includes); why != "" {
			d.Failed = append(d.Failed, HostNote{Host: name, Why: why})
			continue
		}
		if why := notYet(h, s.Includes); why != "" {
			d.Pending = append(d.Pending, HostNote{Host: name, Why: why})
			continue
		}
		d.Healthy = append(d.Healthy, name)
		if h.StateSince.After(soakFrom) {
			soakFrom = h.StateSince
		}
	}
	wave := p.Waves[s.Wave]
	allowed := p.FailureBudget.Allowed(len(s.Hosts))
	switch {
	case len(s.Hosts) == 0:
		// Nothing has proven the wave's image: hosts may not have reported
		// yet, or the range selects none. Advancing would widen an untested
		// change.
		d.Action = ActionWait
		d.Summary = fmt.Sprintf("wave %d (buckets %s): no host of group %s is declared or reporting yet; waiting for the wave's hosts (widen the wave if its range selects none)", d.Wave, wave.Bucket, p.Group)
	case len(d.Failed) > allowed:
		d.Action = ActionHalt
		d.Summary = fmt.Sprintf("%d of %d host(s) of wave %d failed, more than the failure budget of %s (%d)", len(d.Failed), len(s.Hosts), d.Wave, p.FailureBudget, allowed)
	case len(d.Pending) > 0:
		d.Action = ActionWait
		d.Summary = fmt.Sprintf("wave %d (buckets %s): %d of %d host(s) healthy on the wave's commit, waiting for %d", d.Wave, wave.Bucket, len(d.Healthy), len(s.Hosts), len(d.Pending))
	default:
		soaked := s.Now.Sub(soakFrom)
		if soaked < wave.Soak {
			d.Action, d.SoakLeft = ActionWait, wave.Soak-soaked
			d.Summary = fmt.Sprintf("wave %d (buckets %s): all %d host(s) healthy, soaking for %s more (soak %s)", d.Wave, wave.Bucket, len(d.Healthy), d.SoakLeft.Round(time.Second), wave.Soak)
			break
		}
		if s.Wave+1 == len(p.Waves) {
			d.Action = ActionDone
			d.Summary = fmt.Sprintf("the last wave (buckets %s) has soaked healthy: the rollout of group %s is complete", wave.Bucket, p.Group)
			break
		}
		d.Action, d.Next = ActionAdvance, d.Wave+1
		d.Summary = fmt.Sprintf("wave %d (buckets %s) soaked healthy for %s: widening group %s to wave %d (buckets %s)",
			d.Wave, wave.Bucket, soaked.Round(time.Second), p.Group, d.Next, p.Waves[s.Wave+1].Bucket)
	}
	return d
}

// failure says why a host counts against the budget: the rollout's image
// failed on it (quarantined, refused, failed health checks) at the wave's
// commit or later. Errors of the pass (a registry outage, say) only hold
// the wave back.
func failure(h *fleetstatus.Host, includes func(string) bool) string {
	if h.Desired.Commit == "" || !includes(h.Desired.Commit) {
		return ""
	}
	var why []string
	for _, r := range h.Reasons() {
		if !strings.HasPrefix(r, "last pass failed") {
			why = append(why, r)
		}
	}
	if h.Reason != "" && slices.Contains(refusals, h.Reason) {
		why = append(why, "desired image refused ("+h.Reason+")")
	}
	return strings.Join(why, "; ")
}

// refusals are the reasons of a pass that refuse the desired image itself.
var refusals = []string{"no-signature", "bad-signature", "wrong-digest", "wrong-identity", "registry-not-allowed", "malformed-signature", "host-policy"}

// notYet says why a healthy host does not count as done yet.
func notYet(h *fleetstatus.Host, includes func(string) bool) string {
	switch {
	case !h.Reporting:
		return "not reporting"
	case h.Desired.Commit == "" || !includes(h.Desired.Commit):
		return "has not fetched the wave's commit yet (at " + fleetstatus.ShortCommit(h.Desired.Commit) + ")"
	case h.Result == "error":
		return "last pass failed: " + h.Reason
	case h.State != "converged":
		return "state " + h.State
	}
	return ""
}
