package fleetstatus

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// WaveInfo is one section of the page: the hosts whose bucket is in
// [Lo, Hi] (and not in an earlier wave).
type WaveInfo struct {
	Name string `json:"name"`
	Lo   int    `json:"lo"`
	Hi   int    `json:"hi"`
}

// wavesOf are the fleet's waves: its rollout's waves when it has a
// rollout policy, else the bucket ranges its groups select, else one wave
// of every host.
func wavesOf(repo *hostspec.Repo) []WaveInfo {
	all := []WaveInfo{{Name: "all hosts", Lo: 0, Hi: 99}}
	if repo == nil {
		return all
	}
	var ranges [][2]int
	var names []string
	if ro := repo.Fleet().Rollout; ro != nil {
		for i, w := range ro.Waves {
			ranges = append(ranges, [2]int{w.Lo, w.Hi})
			names = append(names, fmt.Sprintf("wave %d (%s): buckets %s", i+1, ro.Group, w.Bucket))
		}
	} else {
		for _, g := range repo.Groups() {
			if b := g.Selector.Bucket; b != "" {
				lo, hi, err := hostspec.ParseBucketRange(b)
				if err != nil {
					continue
				}
				ranges = append(ranges, [2]int{lo, hi})
				names = append(names, fmt.Sprintf("group %s: buckets %s", g.Name, b))
			}
		}
	}
	if len(ranges) == 0 {
		return all
	}
	var out []WaveInfo
	for i, r := range ranges {
		out = append(out, WaveInfo{Name: names[i], Lo: r[0], Hi: r[1]})
	}
	out = append(out, WaveInfo{Name: "other hosts", Lo: 0, Hi: 99})
	return out
}

// waveOf is the first wave whose range holds bucket.
func waveOf(waves []WaveInfo, bucket int) string {
	for _, w := range waves {
		if bucket >= w.Lo && bucket <= w.Hi {
			return w.Name
		}
	}
	return ""
}

// Complete adds what the fleet repository knows to a report: every
// declared host (those that never reported too), each host's bucket and
// wave, and the repository's commit (head, "" when not a commit).
func (f *Fleet) Complete(repo *hostspec.Repo, head string) {
	f.Head = head
	f.Waves = wavesOf(repo)
	if repo != nil {
		for _, name := range repo.HostNames() {
			if h, ok := f.Host(name); ok {
				h.Declared = true
				continue
			}
			f.Hosts = append(f.Hosts, Host{Host: name, Declared: true, Quarantined: []Quarantined{}})
		}
	}
	for i := range f.Hosts {
		h := &f.Hosts[i]
		h.Bucket = hostspec.Bucket(h.Host)
		h.Wave = waveOf(f.Waves, h.Bucket)
	}
	slices.SortFunc(f.Hosts, func(a, b Host) int { return strings.Compare(a.Host, b.Host) })
	f.Digests = summarize(f.Hosts)
}

// Filter says which hosts to show.
type Filter struct {
	HostGlob string // path.Match pattern on the host name
	Behind   bool   // only hosts not yet on what the repository asks
	Failing  bool   // only failing hosts (and hosts not reporting)
}

// Apply keeps the hosts that pass the filter; the digest summary stays
// about the whole fleet.
func (f *Fleet) Apply(flt Filter) error {
	if flt.HostGlob != "" {
		if _, err := path.Match(flt.HostGlob, ""); err != nil {
			return fmt.Errorf("--host %q: %w", flt.HostGlob, err)
		}
	}
	kept := f.Hosts[:0]
	for _, h := range f.Hosts {
		if flt.HostGlob != "" {
			if ok, _ := path.Match(flt.HostGlob, h.Host); !ok {
				continue
			}
		}
		if flt.Behind && !h.Behind(f.Head) {
			continue
		}
		if flt.Failing && !h.Failing() && h.Reporting {
			continue
		}
		kept = append(kept, h)
	}
	f.Hosts = kept
	return nil
}
