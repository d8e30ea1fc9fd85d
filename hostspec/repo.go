package hostspec

import (
	"path"
	"slices"
	"strings"
	"sync"
)

// Repo is a decoded and checked fleet repository at one revision. It is
// immutable and safe for concurrent use.
type Repo struct {
	revision string
	fleet    *Fleet
	groups   []*Group // by ascending priority, then name
	hosts    map[string]*Host
	names    []string // sorted
	lock     *Lock
	images   []string
	limits   effectiveLimits

	// partial is set when Load decoded only some host files
	// (WithHostFiles); skipped are the hosts whose files it only listed.
	partial bool
	skipped map[string]bool
	// later decodes skipped host files on demand (LoadHosts).
	later *hostLoader
	// viaLink: a document was read through a symbolic link.
	viaLink bool

	// bases caches the fleet and groups merged for one set of matching
	// groups: hosts that match the same groups share it, so resolving a
	// host only lays the host's own file on top.
	basesMu sync.RWMutex
	bases   map[string]*mergedState
}

// Fleet is fleet.yaml.
type Fleet struct {
	Name   string // metadata.name; may be empty
	Source Source
	Policy Policy
	// Rollout is the rollout policy (nil when fleet.yaml has none).
	Rollout *Rollout

	policySrc map[string]Source
	layer     *layer
}

// Group is one file of groups/.
type Group struct {
	Name     string
	Source   Source
	Priority int
	Selector Selector
	layer    *layer
}

// Host is one file of hosts/.
type Host struct {
	Name   string
	Source Source
	Labels map[string]string // from metadata.labels (never nil)
	// MachineID is metadata.machineID: the agent refuses the spec on a
	// machine whose /etc/machine-id differs.
	MachineID    string
	machineIDSrc Source
	layer        *layer
}

func (r *Repo) collectImages() []string {
	seen := map[string]bool{}
	addLayer := func(ly *layer) {
		if ly != nil && ly.image.set {
			seen[ly.image.v.ref] = true
		}
	}
	addLayer(r.fleet.layer)
	for _, g := range r.groups {
		addLayer(g.layer)
	}
	for _, h := range r.hosts {
		addLayer(h.layer)
	}
	out := make([]string, 0, len(seen))
	for ref := range seen {
		out = append(out, ref)
	}
	slices.Sort(out)
	return out
}

// Revision is the revision given to WithRevision.
func (r *Repo) Revision() string { return r.revision }

// Fleet returns fleet.yaml's document.
func (r *Repo) Fleet() *Fleet { return r.fleet }

// Groups returns the groups in the order they are applied: ascending
// priority, ties by name.
func (r *Repo) Groups() []*Group { return slices.Clone(r.groups) }

// HostNames returns the names of the hosts declared in hosts/, sorted.
func (r *Repo) HostNames() []string { return slices.Clone(r.names) }

// Hosts returns the hosts declared in hosts/, sorted by name.
func (r *Repo) Hosts() []*Host {
	out := make([]*Host, 0, len(r.names))
	for _, n := range r.names {
		if h, ok := r.hosts[n]; ok {
			out = append(out, h)
		}
	}
	return out
}

// Host returns a declared host.
func (r *Repo) Host(name string) (*Host, bool) {
	h, ok := r.hosts[name]
	return h, ok
}

// Images returns every distinct image reference written anywhere in the
// repository (fleet, groups, hosts), sorted.
func (r *Repo) Images() []string { return slices.Clone(r.images) }

// Lock returns bootsync.lock, or nil when the repository has none.
func (r *Repo) Lock() *Lock { return r.lock }

// checkHostName reports a host whose name is not its file's or is declared
// twice, and records the name; it returns whether the host can be used.
func (l *loader) checkHostName(file string, doc *hostDoc, hostFiles map[string]string) bool {
	at := Source{Line: doc.nameNode.Line, Column: doc.nameNode.Column}
	want := strings.TrimSuffix(path.Base(file), ".yaml")
	if doc.name != want {
		l.fail(file, at, "metadata.name",
			"host name %q does not match the file name: hosts/…/%s.yaml must declare name %q", doc.name, want, want)
		return false
	}
	if prev, dup := hostFiles[doc.name]; dup {
		l.fail(file, at, "metadata.name", "duplicate host %q: also defined in %s", doc.name, prev)
		return false
	}
	hostFiles[doc.name] = file
	return true
}
