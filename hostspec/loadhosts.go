package hostspec

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// hostLoader decodes, on demand, the host files that a Load with
// WithHostFilesOnDemand only listed. It keeps that Load's loader: the
// limits, the parsed templates and the files read so far (fleet.yaml,
// groups, what their `from:` entries read) count once for the whole
// repository.
type hostLoader struct {
	mu    sync.Mutex // one LoadHosts at a time: the loader is not safe for concurrent use
	l     *loader
	files map[string]string // host name -> its file, for the listed hosts
}

func newHostLoader(l *loader, files []string) *hostLoader {
	hl := &hostLoader{l: l, files: make(map[string]string, len(files))}
	for _, f := range files {
		hl.files[HostFileName(f)] = f
	}
	return hl
}

// LoadHosts returns a Repo that resolves the given hosts as a whole Load
// would: r itself when it holds their files already, or, for a Repo
// loaded WithHostFilesOnDemand, a Repo that shares r's fleet, groups and
// lock and holds, besides the hosts r holds, the files of the named hosts.
// Names r does not declare are ignored, and so are, for a Repo loaded
// otherwise, the hosts whose files it did not decode (Resolve refuses
// them). Each call holds only the hosts it is given, so a caller that
// walks a large fleet in batches keeps one batch in memory; cache, when
// not nil, shares read and decoded files with the loads of another
// revision (see DecodeCache).
//
// Problems in the files read are returned as an ErrorList, as Load does.
func (r *Repo) LoadHosts(ctx context.Context, names []string, cache *DecodeCache) (*Repo, error) {
	if r.later == nil || !r.skipsAny(names) {
		return r, nil
	}
	hl := r.later
	hl.mu.Lock()
	defer hl.mu.Unlock()
	l := hl.l
	// Each call reports its own problems, a repoSize overrun included.
	l.ctx, l.rfs.cache, l.errs, l.repoSizeReported = ctx, cache, nil, false
	defer func() { l.ctx, l.rfs.cache, l.errs = nil, nil, nil }()

	var sources []*source
	for _, n := range names {
		file, ok := hl.files[n]
		if !ok {
			continue
		}
		if data, err := l.readYAML(file); err == nil {
			sources = append(sources, &source{file: file, wantKind: KindHost, data: data})
		}
	}
	if err := l.decodeAll(sources); err != nil {
		return nil, err
	}
	out := &Repo{
		revision: r.revision, fleet: r.fleet, groups: r.groups, names: r.names, lock: r.lock, limits: r.limits,
		partial: true, skipped: r.skipped, later: hl, viaLink: r.viaLink,
		hosts: maps.Clone(r.hosts), bases: map[string]*mergedState{},
	}
	declared := &declaredNames{hosts: map[string]string{}, groups: map[string]Source{}}
	for _, s := range sources {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load host files: %w", err)
		}
		l.addSource(out, s, declared)
		// Each host file is read once: keeping its bytes would hold the
		// whole fleet in memory by the last batch.
		l.rfs.forget(s.file)
	}
	if len(l.errs) > 0 {
		l.errs.Sort()
		return nil, l.errs
	}
	out.images = out.collectImages()
	return out, nil
}

// skipsAny reports whether r only listed the file of one of names.
func (r *Repo) skipsAny(names []string) bool {
	for _, n := range names {
		if r.skipped[n] && r.hosts[n] == nil {
			return true
		}
	}
	return false
}
