package fleetstatus

import (
	"strings"

	"github.com/bootsync/bootsync/hostspec/fleetdiff"
)

// ForDiff is the live status of the hosts a diff changes, with flags for
// hosts that are failing, quarantined, unreachable or already boot the
// head's image.
func (f *Fleet) ForDiff(rep *fleetdiff.Report) *fleetdiff.LiveStatus {
	ls := &fleetdiff.LiveStatus{Source: f.Source, Time: f.Time, Hosts: map[string]fleetdiff.HostNow{}}
	for _, hc := range rep.Hosts {
		h, ok := f.Host(hc.Host)
		if !ok || !h.Seen {
			if hc.Status != fleetdiff.StatusAdded {
				ls.Hosts[hc.Host] = fleetdiff.HostNow{Flags: []string{fleetdiff.FlagNeverSeen}}
			}
			continue
		}
		n := fleetdiff.HostNow{Booted: h.Booted.Digest, BootedCommit: h.Booted.Commit, State: h.State, Flags: []string{}}
		var details []string
		switch h.Kind() {
		case KindNotReporting:
			n.Flags = append(n.Flags, fleetdiff.FlagUnreachable)
			details = append(details, "not reporting")
		case KindQuarantined:
			n.Flags = append(n.Flags, fleetdiff.FlagQuarantined)
			details = append(details, h.Reasons()...)
		case KindFailing:
			n.Flags = append(n.Flags, fleetdiff.FlagFailing)
			details = append(details, h.Reasons()...)
		}
		if hc.Image != nil && hc.Image.Head != nil && onTarget(h, hc.Image.Head.Ref, hc.Image.Head.Digest) {
			n.Flags = append(n.Flags, fleetdiff.FlagOnTarget)
		}
		n.Detail = strings.Join(details, "; ")
		ls.Hosts[hc.Host] = n
	}
	return ls
}

// onTarget says whether the host already boots the head's image: the same
// digest, or (for a tag the head does not pin) the same reference its
// agent resolved and runs.
func onTarget(h *Host, ref, digest string) bool {
	if h.Booted.Digest == "" {
		return false
	}
	if digest != "" {
		return h.Booted.Digest == digest || (h.Desired.Digest == digest && h.OnDesired())
	}
	return h.Desired.Ref == ref && h.OnDesired()
}
