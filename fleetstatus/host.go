// Package fleetstatus reads what every host of a fleet runs from the
// agents' metrics in Prometheus (the HTTP API), and shows it as a table,
// JSON, markdown or one self-contained HTML page. `bootsync fleet status`,
// `bootsync diff --status-from` and `bootsync rollout` use it.
package fleetstatus

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Host is what one host's agent last reported.
type Host struct {
	Host string `json:"host"`
	// Instance is Prometheus' instance label of the agent's endpoint.
	Instance string `json:"instance,omitempty"`
	Bucket   int    `json:"bucket"`
	// Wave is the section of the HTML page the host is shown in.
	Wave string `json:"wave,omitempty"`
	// Reporting is false when Prometheus has no current sample of the
	// agent: it is stopped, the host is down or unreachable. The other
	// fields are then its last report within the lookback window.
	Reporting bool `json:"reporting"`
	// Declared is true for hosts with a file in the fleet repository;
	// Seen is false for declared hosts that never reported.
	Declared bool `json:"declared"`
	Seen     bool `json:"seen"`

	Booted  Image `json:"booted"`
	Desired Image `json:"desired"`

	State      string    `json:"state,omitempty"` // converged, updating, waiting, verifying, paused, quarantined, refused, unmanaged
	StateSince time.Time `json:"stateSince,omitzero"`
	LastPass   time.Time `json:"lastPass,omitzero"`
	Result     string    `json:"result,omitempty"` // ok | error
	Reason     string    `json:"reason,omitempty"` // the error's reason code
	// Health is the last verification after an update.
	Health        *Health       `json:"health,omitempty"`
	Quarantined   []Quarantined `json:"quarantined"`
	RebootPending bool          `json:"rebootPending"`
}

// Image is an image digest and the commit it came from (desired: the
// commit the agent last resolved; booted: the commit that first asked for
// the booted image, when the agent saw it).
type Image struct {
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// Health is the verdict of the last verification.
type Health struct {
	Digest string `json:"digest"`
	Passed bool   `json:"passed"`
}

// Quarantined is an image the host will not try again.
type Quarantined struct {
	Digest string `json:"digest"`
	Check  string `json:"check,omitempty"`
}

// Kinds of host, one per colour of the page.
const (
	KindOK           = "ok"
	KindUpdating     = "updating"
	KindPaused       = "paused"
	KindQuarantined  = "quarantined"
	KindFailing      = "failing"
	KindNotReporting = "not-reporting"
	KindNeverSeen    = "never-reported"
)

// Kinds lists every kind, in the order of the legend.
var Kinds = []string{KindOK, KindUpdating, KindPaused, KindQuarantined, KindFailing, KindNotReporting, KindNeverSeen}

// Kind sums the host up in one word.
func (h *Host) Kind() string {
	switch {
	case !h.Seen:
		return KindNeverSeen
	case !h.Reporting:
		return KindNotReporting
	case h.State == "quarantined" || h.desiredQuarantined():
		return KindQuarantined
	case h.Failing():
		return KindFailing
	case h.State == "paused":
		return KindPaused
	case h.State == "converged":
		return KindOK
	}
	return KindUpdating
}

func (h *Host) desiredQuarantined() bool {
	return h.Desired.Digest != "" && slices.ContainsFunc(h.Quarantined, func(q Quarantined) bool { return q.Digest == h.Desired.Digest })
}

// Failing says whether the host needs a person: its desired image is
// quarantined or refused, its last verification failed, or its last pass
// ended in an error.
func (h *Host) Failing() bool { return len(h.Reasons()) > 0 }

// Reasons says why the host is failing (empty when it is not).
func (h *Host) Reasons() []string {
	var out []string
	if h.State == "quarantined" || h.desiredQuarantined() {
		msg := "desired image is quarantined"
		for _, q := range h.Quarantined {
			if q.Digest == h.Desired.Digest || len(h.Quarantined) == 1 {
				msg = "quarantined " + ShortDigest(q.Digest)
				if q.Check != "" {
					msg += " (health check " + q.Check + " failed)"
				}
				break
			}
		}
		out = append(out, msg)
	}
	if h.State == "refused" {
		out = append(out, "desired image refused by the image policy")
	}
	if h.Health != nil && !h.Health.Passed && h.Health.Digest == h.Booted.Digest {
		out = append(out, "health checks failed on the booted image "+ShortDigest(h.Health.Digest))
	}
	if h.Result == "error" {
		out = append(out, "last pass failed: "+orDash(h.Reason))
	}
	return out
}

// OnDesired says whether the host runs the image its agent was asked for.
func (h *Host) OnDesired() bool {
	return h.State == "converged" || (h.Booted.Digest != "" && h.Booted.Digest == h.Desired.Digest)
}

// Behind says whether the host does not yet run what the fleet repository
// asks for at commit head ("" when unknown: only its own desired state
// counts).
func (h *Host) Behind(head string) bool {
	if !h.Reporting || !h.OnDesired() {
		return true
	}
	return head != "" && h.Desired.Commit != head
}

// ShortDigest abbreviates sha256:… to 12 hex digits.
func ShortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return orDash(d)
}

// ShortCommit abbreviates a commit id to 12 hex digits.
func ShortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return orDash(c)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Fleet is every host's last report.
type Fleet struct {
	// Source is the Prometheus URL the report came from.
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// Head is the fleet repository's commit, when known.
	Head    string        `json:"head,omitempty"`
	Hosts   []Host        `json:"hosts"`
	Digests []DigestCount `json:"digests"`
	Waves   []WaveInfo    `json:"waves,omitempty"`
}

// DigestCount is how many hosts boot one digest.
type DigestCount struct {
	Digest  string   `json:"digest"`
	Hosts   int      `json:"hosts"`
	Commits []string `json:"commits"` // the commits they came from
	Refs    []string `json:"refs"`    // the references the fleet wrote for it
}

// Host returns the named host's report.
func (f *Fleet) Host(name string) (*Host, bool) {
	for i := range f.Hosts {
		if f.Hosts[i].Host == name {
			return &f.Hosts[i], true
		}
	}
	return nil, false
}

// summarize counts the hosts per booted digest, most hosts first.
func summarize(hosts []Host) []DigestCount {
	by := map[string]*DigestCount{}
	for _, h := range hosts {
		if !h.Seen || h.Booted.Digest == "" {
			continue
		}
		dc := by[h.Booted.Digest]
		if dc == nil {
			dc = &DigestCount{Digest: h.Booted.Digest, Commits: []string{}, Refs: []string{}}
			by[h.Booted.Digest] = dc
		}
		dc.Hosts++
		if h.Booted.Commit != "" && !slices.Contains(dc.Commits, h.Booted.Commit) {
			dc.Commits = append(dc.Commits, h.Booted.Commit)
		}
		if h.Desired.Digest == h.Booted.Digest && h.Desired.Ref != "" && !slices.Contains(dc.Refs, h.Desired.Ref) {
			dc.Refs = append(dc.Refs, h.Desired.Ref)
		}
	}
	out := make([]DigestCount, 0, len(by))
	for _, dc := range by {
		slices.Sort(dc.Commits)
		slices.Sort(dc.Refs)
		out = append(out, *dc)
	}
	slices.SortFunc(out, func(a, b DigestCount) int {
		if a.Hosts != b.Hosts {
			return b.Hosts - a.Hosts
		}
		return strings.Compare(a.Digest, b.Digest)
	})
	return out
}

// summaryLine is one digest's line of the summary.
func (dc DigestCount) summaryLine() string {
	s := fmt.Sprintf("%s  %d host(s)", ShortDigest(dc.Digest), dc.Hosts)
	if len(dc.Refs) > 0 {
		s += "  " + strings.Join(dc.Refs, ", ")
	}
	if len(dc.Commits) > 0 {
		cs := make([]string, len(dc.Commits))
		for i, c := range dc.Commits {
			cs[i] = ShortCommit(c)
		}
		s += "  from " + strings.Join(cs, ", ")
	}
	return s
}
