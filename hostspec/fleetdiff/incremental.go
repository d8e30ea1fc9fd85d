package fleetdiff

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/bootsync/bootsync/hostspec"
)

// ErrFullNeeded is returned by CompareChanged when it cannot tell which
// hosts a change affects, or when loading or rendering a revision ran into
// a problem: the caller then runs the full comparison (Compare), which
// checks every file and reports problems as it always does.
var ErrFullNeeded = errors.New("the change needs a full comparison")

// Side is one revision for CompareChanged: its files, and how to load them
// (Load passes its options on to hostspec.Load).
type Side struct {
	Name string
	FS   fs.FS
	Load func(ctx context.Context, opts ...hostspec.LoadOption) (*hostspec.Repo, error)
}

// CompareChanged returns the report Compare would, rendering only the hosts
// the change between the two trees can affect: a host file affects its
// host; a group file the hosts its old or new selector picks; any other
// file the hosts whose fleet, groups or host file read it (`from:`).
// fleet.yaml and bootsync.lock affect every host. Anything it cannot
// attribute (symbolic links to documents, odd entries in groups/ or
// hosts/) means ErrFullNeeded.
//
// Host files are read in batches (see compareAll), each file the two
// revisions share read and decoded once: memory holds one batch of parsed
// files, not the fleet's. Host files no affected host needs are not read at all
// when the changed groups select by name and bucket only; a group that
// selects by labels, or a changed file that `from:` may read, means
// reading every host file once to find the hosts affected.
//
// Unlike Compare, files the change leaves alone are not all checked: a
// host file broken at both revisions goes unnoticed here (`bootsync
// validate` checks every file).
func CompareChanged(ctx context.Context, base, head Side, opts Options) (*Report, error) {
	if opts.HostGlob != "" {
		if _, err := path.Match(opts.HostGlob, ""); err != nil {
			return nil, fmt.Errorf("host glob %q: %w", opts.HostGlob, err)
		}
	}
	rep, err := compareChanged(ctx, base, head, opts)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil && !errors.Is(err, ErrFullNeeded) {
		return nil, fmt.Errorf("%w: %w", ErrFullNeeded, err)
	}
	return rep, err
}

// listHostFiles loads a revision with its host files listed, not read:
// compareAll reads them a batch at a time.
var listHostFiles = hostspec.WithHostFilesOnDemand()

// change is what differs between the two trees, sorted by kind.
type change struct {
	hosts  map[string]bool // host names whose files changed
	groups []string        // group files that changed
	others []string        // other files (what `from:` may read)
	every  bool            // fleet.yaml or bootsync.lock: every host
}

func classify(paths []string) (*change, error) {
	c := &change{hosts: map[string]bool{}}
	for _, p := range paths {
		switch {
		case p == hostspec.FleetFile || p == hostspec.LockFile:
			c.every = true
		case strings.HasPrefix(p, hostspec.HostsDir+"/") && strings.HasSuffix(p, ".yaml"):
			c.hosts[hostspec.HostFileName(p)] = true
		case strings.HasPrefix(p, hostspec.GroupsDir+"/") && strings.HasSuffix(p, ".yaml"):
			c.groups = append(c.groups, p)
		case p == hostspec.HostsDir || p == hostspec.GroupsDir ||
			strings.HasPrefix(p, hostspec.HostsDir+"/") || strings.HasPrefix(p, hostspec.GroupsDir+"/"):
			return nil, fmt.Errorf("%w: %s is not a *.yaml document", ErrFullNeeded, p)
		default:
			c.others = append(c.others, p)
		}
	}
	return c, nil
}

func compareChanged(ctx context.Context, base, head Side, opts Options) (*Report, error) {
	paths, err := changedPaths(ctx, base.FS, head.FS)
	if err != nil {
		return nil, err
	}
	c, err := classify(paths)
	if err != nil {
		return nil, err
	}
	// The fleet and the groups; host files are decoded later, in batches
	// (compareAll), and only where needed.
	rb, rh, err := loadBoth(ctx, base, head, listHostFiles)
	if err != nil {
		return nil, err
	}
	bRev, hRev := Revision{base.Name, rb, base.FS}, Revision{head.Name, rh, head.FS}
	names := unionHosts(rb.HostNames(), rh.HostNames(), opts.HostGlob)
	if c.every {
		return compareHosts(ctx, bRev, hRev, names, names, opts)
	}
	affected, needAll := c.hosts, len(c.others) > 0
	for _, r := range []*hostspec.Repo{rb, rh} {
		if r.DocumentsViaLinks() {
			return nil, fmt.Errorf("%w: a document is a symbolic link", ErrFullNeeded)
		}
		for _, g := range changedGroupsIn(r, c.groups) {
			if len(g.Selector.Labels) > 0 {
				needAll = true // labels are in every host file
				continue
			}
			for _, name := range r.HostNames() {
				if g.Selector.Matches(name, nil) {
					affected[name] = true
				}
			}
		}
	}
	if needAll {
		all, err := affectedInFiles(ctx, bRev, hRev, names, c, affected)
		if err != nil {
			return nil, err
		}
		if all {
			return compareHosts(ctx, bRev, hRev, names, names, opts)
		}
	}
	render := make([]string, 0, len(affected))
	for _, n := range names {
		if affected[n] {
			render = append(render, n)
		}
	}
	return compareHosts(ctx, bRev, hRev, names, render, opts)
}

// changedGroupsIn returns the groups of r defined in the given files.
func changedGroupsIn(r *hostspec.Repo, files []string) []*hostspec.Group {
	var out []*hostspec.Group
	for _, g := range r.Groups() {
		if slices.Contains(files, g.Source.File) {
			out = append(out, g)
		}
	}
	return out
}

// affectedInFiles adds the hosts the change affects through what their
// own files hold (labels a changed group selects, `from:` reads of a
// changed file), reading the host files of both revisions a batch at a
// time. It returns true when the change affects every host.
func affectedInFiles(ctx context.Context, base, head Revision, names []string, c *change, affected map[string]bool) (bool, error) {
	for start := 0; start < len(names); start += batchSize {
		b, h, err := loadBatch(ctx, base, head, names[start:min(start+batchSize, len(names))])
		if err != nil {
			return false, err
		}
		for _, r := range []*hostspec.Repo{b.Repo, h.Repo} {
			if addAffected(r, c, affected) {
				return true, nil
			}
		}
	}
	return false, nil
}

// addAffected adds the hosts of a revision (those whose files it holds)
// that the change affects: those the changed groups select and those that
// read a changed file. It returns true when that is every host.
func addAffected(r *hostspec.Repo, c *change, affected map[string]bool) bool {
	groups := changedGroupsIn(r, c.groups)
	for _, h := range r.Hosts() {
		for _, g := range groups {
			if g.Selector.Matches(h.Name, h.Labels) {
				affected[h.Name] = true
			}
		}
	}
	all, hosts := r.HostsReading(c.others)
	for _, n := range hosts {
		affected[n] = true
	}
	return all
}

// loadBoth loads the two revisions at once; a problem in either is
// ErrFullNeeded, for the full comparison to report.
func loadBoth(ctx context.Context, base, head Side, opts ...hostspec.LoadOption) (*hostspec.Repo, *hostspec.Repo, error) {
	var (
		rb, rh     *hostspec.Repo
		berr, herr error
		wg         sync.WaitGroup
	)
	wg.Go(func() { rb, berr = base.Load(ctx, opts...) })
	wg.Go(func() { rh, herr = head.Load(ctx, opts...) })
	wg.Wait()
	if err := errors.Join(berr, herr); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrFullNeeded, err)
	}
	return rb, rh, nil
}
