package fleetdiff

import (
	"fmt"
	"sort"
	"strings"
)

// changeGroup is the hosts whose change reads the same in the table: same
// status, groups, image, /etc paths and settings. Its variants split it by
// content (file digests, setting values), one expanded section each.
type changeGroup struct {
	hosts    []string
	change   HostChange
	variants []*variant
	byKey    map[string]*variant
}

type variant struct {
	hosts  []string
	change HostChange
}

// groupChanges groups hosts by identical change, largest groups first.
func groupChanges(hosts []HostChange) []*changeGroup {
	byRow := map[string]*changeGroup{}
	var out []*changeGroup
	for _, h := range hosts {
		rk := rowKey(h)
		g := byRow[rk]
		if g == nil {
			g = &changeGroup{change: h, byKey: map[string]*variant{}}
			byRow[rk] = g
			out = append(out, g)
		}
		g.hosts = append(g.hosts, h.Host)
		vk := contentKey(h)
		v := g.byKey[vk]
		if v == nil {
			v = &variant{change: h}
			g.byKey[vk] = v
			g.variants = append(g.variants, v)
		}
		v.hosts = append(v.hosts, h.Host)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].hosts) > len(out[j].hosts) })
	return out
}

// rowKey is what a table row shows of a change.
func rowKey(h HostChange) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00", h.Status, groupLine(h))
	if h.Image != nil {
		b.WriteString(imageLine(h.Image))
	}
	for _, f := range h.Files {
		fmt.Fprintf(&b, "\x00f%s\x00%s\x00%s", f.Status, f.Path, metaNote(f))
	}
	for _, c := range h.Settings {
		fmt.Fprintf(&b, "\x00s%s", c.Field)
	}
	return b.String()
}

// contentKey adds what the expanded section shows: contents and values.
func contentKey(h HostChange) string {
	var b strings.Builder
	b.WriteString(rowKey(h))
	for _, f := range h.Files {
		fmt.Fprintf(&b, "\x00c%s\x00%s\x00%s\x00%s", f.BaseSHA256, f.HeadSHA256, f.Omitted, f.Diff)
	}
	for _, c := range h.Settings {
		fmt.Fprintf(&b, "\x00v%s\x00%s", c.Base, c.Head)
	}
	return b.String()
}
