package hostspec

import (
	"path"
	"slices"
	"strings"
)

// WithHostFiles makes Load decode only the files of hosts/ whose host
// (the file's base name without .yaml) keep accepts. The others are only
// listed: their names are in HostNames, but they are not read or checked,
// and Resolve refuses them. A diff uses it to read what a change can
// affect; everything that checks a whole repository loads without it.
//
// Files that share a base name are always decoded, so that a host declared
// twice is reported as without the option.
func WithHostFiles(keep func(name string) bool) LoadOption {
	return func(c *loadConfig) error {
		c.keepHost = keep
		return nil
	}
}

// WithHostFilesOnDemand makes Load list the files of hosts/ without
// decoding any (as WithHostFiles with a keep that accepts none), and keep
// what it needs to decode them later, in batches, with LoadHosts: a
// program that walks a whole large fleet holds one batch at a time.
func WithHostFilesOnDemand() LoadOption {
	return func(c *loadConfig) error {
		c.keepHost = func(string) bool { return false }
		c.onDemand = true
		return nil
	}
}

// splitHostFiles splits the files of hosts/ into those to decode and
// those only listed.
func splitHostFiles(files []string, keep func(string) bool) (decode, skipped []string) {
	count := make(map[string]int, len(files))
	for _, f := range files {
		count[HostFileName(f)]++
	}
	for _, f := range files {
		name := HostFileName(f)
		if count[name] > 1 || keep(name) {
			decode = append(decode, f)
		} else {
			skipped = append(skipped, f)
		}
	}
	return decode, skipped
}

// HostFileName is the host a file of hosts/ declares: its base name
// without .yaml (Load refuses a file that declares another name).
func HostFileName(file string) string {
	return strings.TrimSuffix(path.Base(file), ".yaml")
}

// DocumentsViaLinks reports whether a document (fleet.yaml, a group or
// host file, bootsync.lock) or its directory is a symbolic link: what it
// holds then comes from another path.
func (r *Repo) DocumentsViaLinks() bool { return r.viaLink }

// Partial reports whether Load decoded only some host files.
func (r *Repo) Partial() bool { return r.partial }

// HostsReading returns the hosts whose spec may depend on one of the
// given repository paths (files that are not documents: what `from:`
// entries read), or all=true when the fleet's own layer reads one. Only
// the hosts whose files r holds are considered (Hosts): of a repository
// loaded with WithHostFiles, ask each batch that LoadHosts returns. A
// path counts when it is a path a layer read, lies under one (a file
// added to a directory) or above one (a directory or symbolic link on the
// way).
func (r *Repo) HostsReading(paths []string) (all bool, hosts []string) {
	if len(paths) == 0 {
		return false, nil
	}
	if readsAny(r.fleet.layer, paths) {
		return true, nil
	}
	var groups []*Group
	for _, g := range r.groups {
		if readsAny(g.layer, paths) {
			groups = append(groups, g)
		}
	}
	for _, h := range r.Hosts() {
		if readsAny(h.layer, paths) || slices.ContainsFunc(groups, func(g *Group) bool { return g.Selector.Matches(h.Name, h.Labels) }) {
			hosts = append(hosts, h.Name)
		}
	}
	return false, hosts
}

func readsAny(ly *layer, paths []string) bool {
	if ly == nil {
		return false
	}
	for _, read := range ly.reads {
		for _, p := range paths {
			if related(read, p) {
				return true
			}
		}
	}
	return false
}

// related reports whether a and b are the same path or one lies under the
// other.
func related(a, b string) bool {
	a, b = path.Clean(a), path.Clean(b)
	if a == b || a == "." || b == "." {
		return true
	}
	return strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}
