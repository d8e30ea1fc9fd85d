package fleetdiff

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// LiveStatus is what the changed hosts run now, from their agents'
// metrics (`bootsync diff --status-from`): a PR's diff then says "moves
// web-03 from X to Y" knowing web-03 is quarantined on W.
type LiveStatus struct {
	Source string             `json:"source"`
	Time   time.Time          `json:"time"`
	Hosts  map[string]HostNow `json:"hosts"`
}

// HostNow is one changed host's last report.
type HostNow struct {
	Booted       string   `json:"booted,omitempty"`       // booted digest
	BootedCommit string   `json:"bootedCommit,omitempty"` // the commit it came from
	State        string   `json:"state,omitempty"`
	Flags        []string `json:"flags"`
	Detail       string   `json:"detail,omitempty"`
}

// Flags on a changed host.
const (
	FlagFailing     = "failing"     // its last pass failed or its image failed checks
	FlagQuarantined = "quarantined" // its desired image is quarantined
	FlagUnreachable = "unreachable" // its agent stopped reporting
	FlagNeverSeen   = "never-reported"
	FlagOnTarget    = "on-target" // it already boots the head's image
)

// Annotate attaches live status to the report; the writers show it.
func (r *Report) Annotate(s *LiveStatus) { r.Status = s }

// statusLine is one host's live status for text output ("" without any).
func (r *Report) statusLine(host string) string {
	if r.Status == nil {
		return ""
	}
	n, ok := r.Status.Hosts[host]
	if !ok {
		return "no report"
	}
	s := "runs " + shortDigest(n.Booted)
	if n.BootedCommit != "" {
		s += " (from " + shortRev(n.BootedCommit) + ")"
	}
	if n.State != "" {
		s += ", " + n.State
	}
	if len(n.Flags) > 0 {
		s += " [" + strings.Join(n.Flags, ", ") + "]"
	}
	if n.Detail != "" {
		s += ": " + n.Detail
	}
	return s
}

// maxNamesPerFlag bounds the hosts named per flag in a PR comment.
const maxNamesPerFlag = 20

// statusMarkdown is the live-status section of the PR comment; it is
// bounded (a few KB) whatever the fleet's size.
func (r *Report) statusMarkdown() string {
	if r.Status == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**What the changed hosts run now** (from %s at %s):\n\n", mdEscape(r.Status.Source), r.Status.Time.UTC().Format("2006-01-02 15:04 UTC"))
	byDigest := map[string]int{}
	flagged := map[string][]string{}
	for _, h := range r.Hosts {
		n, ok := r.Status.Hosts[h.Host]
		if !ok {
			continue
		}
		if n.Booted != "" {
			byDigest[n.Booted]++
		}
		for _, f := range n.Flags {
			flagged[f] = append(flagged[f], h.Host)
		}
	}
	digests := make([]string, 0, len(byDigest))
	for d := range byDigest {
		digests = append(digests, d)
	}
	sort.Slice(digests, func(i, j int) bool {
		return byDigest[digests[i]] > byDigest[digests[j]] || byDigest[digests[i]] == byDigest[digests[j]] && digests[i] < digests[j]
	})
	for i, d := range digests {
		if i == maxNamesPerFlag {
			fmt.Fprintf(&b, "- … %d more digests\n", len(digests)-i)
			break
		}
		fmt.Fprintf(&b, "- %d host(s) run %s\n", byDigest[d], codeSpan(shortDigest(d)))
	}
	for _, f := range []string{FlagQuarantined, FlagFailing, FlagUnreachable, FlagNeverSeen, FlagOnTarget} {
		hosts := flagged[f]
		if len(hosts) == 0 {
			continue
		}
		mark := "⚠️ "
		if f == FlagOnTarget {
			mark = ""
		}
		names := hosts
		more := ""
		if len(names) > maxNamesPerFlag {
			names, more = names[:maxNamesPerFlag], fmt.Sprintf(", … %d more", len(hosts)-maxNamesPerFlag)
		}
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = codeSpan(n)
			if d := r.Status.Hosts[n].Detail; d != "" && f != FlagOnTarget && len(hosts) <= maxNamesPerFlag {
				quoted[i] += " (" + mdEscape(d) + ")"
			}
		}
		fmt.Fprintf(&b, "- %s**%d %s**: %s%s\n", mark, len(hosts), f, strings.Join(quoted, ", "), more)
	}
	b.WriteString("\n")
	return b.String()
}
