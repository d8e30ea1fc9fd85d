package hostspec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// LoadOption configures Load.
type LoadOption func(*loadConfig) error

type loadConfig struct {
	revision string
	ceilings Limits
	keepHost func(name string) bool // nil: every host file is decoded
	onDemand bool                   // keep the loader for LoadHosts
	cache    *DecodeCache           // nil: every file is decoded here
}

// WithRevision records rev (normally the commit id the tree was read from)
// into every HostSpec's Revision.
func WithRevision(rev string) LoadOption {
	return func(c *loadConfig) error {
		if rev == "" {
			return errors.New("WithRevision: revision is empty")
		}
		for _, r := range rev {
			if r <= ' ' || r == 0x7f {
				return fmt.Errorf("WithRevision: revision %q contains spaces or control characters", rev)
			}
		}
		c.revision = rev
		return nil
	}
}

// Load reads and checks a fleet repository: fleet.yaml, groups/, hosts/
// (both searched recursively for *.yaml), bootsync.lock and every file
// that `etc:` entries refer to. Every problem in every file is reported, as
// an ErrorList sorted by file and line.
func Load(ctx context.Context, fsys fs.FS, opts ...LoadOption) (*Repo, error) {
	var cfg loadConfig
	cfg.ceilings = DefaultCeilings
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("load fleet repository: %w", err)
		}
	}
	cfg.ceilings = cfg.ceilings.WithDefaults(DefaultCeilings)
	l := &loader{ctx: ctx, rfs: newRepoFS(fsys), templates: map[string]*tmpl{}, templateErrs: map[string]bool{}, hkeys: map[string]*healthKeys{}}
	// fleet.yaml is read within the ceilings; its own limits apply to
	// everything after it.
	l.limits = effectiveLimits{Limits: cfg.ceilings, ceilings: cfg.ceilings}
	l.rfs.limits = &l.limits
	l.rfs.cache = cfg.cache
	repo, err := l.load(cfg)
	if err != nil {
		return nil, err
	}
	return repo, nil
}

type loader struct {
	ctx          context.Context
	rfs          *repoFS
	errs         ErrorList
	templates    map[string]*tmpl
	templateErrs map[string]bool
	hkeys        map[string]*healthKeys
	limits       effectiveLimits
	// viaLink is set when a document's path goes through a symbolic link.
	viaLink bool
	// reads collects the paths read by the layer being prepared.
	reads []string
	// repoSizeReported is set once the repository went over
	// limits.repoSize: that is reported once, not for every later file.
	repoSizeReported bool
}

func (l *loader) fail(file string, src Source, field, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: file, Line: src.Line, Column: src.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// source is one YAML file to decode.
type source struct {
	file     string
	wantKind string
	data     []byte
	doc      any
	errs     ErrorList
	decoded  bool
}

func (l *loader) load(cfg loadConfig) (*Repo, error) {
	sources := l.readFleet(cfg.ceilings)
	var skipped []string
	for _, dir := range []struct{ dir, kind string }{{GroupsDir, KindGroup}, {HostsDir, KindHost}} {
		files, err := l.yamlFiles(dir.dir)
		if err != nil {
			return nil, err
		}
		if dir.kind == KindHost && cfg.keepHost != nil {
			files, skipped = splitHostFiles(files, cfg.keepHost)
		}
		for _, f := range files {
			if err := l.ctx.Err(); err != nil {
				return nil, fmt.Errorf("load fleet repository: %w", err)
			}
			if data, err := l.readYAML(f); err == nil {
				sources = append(sources, &source{file: f, wantKind: dir.kind, data: data})
			}
		}
	}
	if data, err := l.readYAML(LockFile); err == nil {
		sources = append(sources, &source{file: LockFile, wantKind: KindLock, data: data})
	}

	if err := l.decodeAll(sources); err != nil {
		return nil, err
	}

	repo := &Repo{revision: cfg.revision, hosts: map[string]*Host{}, bases: map[string]*mergedState{}, limits: l.limits}
	repo.partial = cfg.keepHost != nil
	repo.viaLink = l.viaLink
	repo.skipped = make(map[string]bool, len(skipped))
	for _, f := range skipped {
		repo.skipped[HostFileName(f)] = true
	}
	if cfg.onDemand {
		repo.later = newHostLoader(l, skipped)
	}
	names := &declaredNames{hosts: map[string]string{}, groups: map[string]Source{}}
	for _, s := range sources {
		if err := l.ctx.Err(); err != nil {
			return nil, fmt.Errorf("load fleet repository: %w", err)
		}
		l.addSource(repo, s, names)
	}
	if len(l.errs) > 0 {
		l.errs.Sort()
		return nil, l.errs
	}
	if repo.fleet == nil {
		// fleet.yaml could not be read; its problem is already listed.
		return nil, ErrorList{{File: FleetFile, Msg: "could not be loaded"}}
	}
	if l.checkRollout(repo); len(l.errs) > 0 {
		return nil, l.errs
	}
	slices.SortFunc(repo.groups, func(a, b *Group) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), strings.Compare(a.Name, b.Name))
	})
	repo.names = make([]string, 0, len(repo.hosts)+len(repo.skipped))
	for n := range repo.hosts {
		repo.names = append(repo.names, n)
	}
	for n := range repo.skipped {
		repo.names = append(repo.names, n)
	}
	slices.Sort(repo.names)
	repo.images = repo.collectImages()
	return repo, nil
}

// declaredNames are the hosts and groups added so far, to report names
// declared twice.
type declaredNames struct {
	hosts  map[string]string // host name -> file
	groups map[string]Source
}

// addSource adds one decoded file to the repository, or records why it
// cannot be.
func (l *loader) addSource(repo *Repo, s *source, names *declaredNames) {
	l.errs = append(l.errs, s.errs...)
	if len(s.errs) > 0 {
		// Still look at the files its valid parts refer to, and at its
		// name, so that one run reports every problem.
		l.prepareOnly(s.doc)
		if doc, ok := s.doc.(*hostDoc); ok && doc != nil && doc.nameNode != nil {
			l.checkHostName(s.file, doc, names.hosts)
		}
		return
	}
	switch doc := s.doc.(type) {
	case *fleetDoc:
		repo.fleet = &Fleet{Name: doc.name, Source: doc.src, Policy: doc.policy, policySrc: doc.policySrc, layer: l.prepare(s.file, &doc.spec), Rollout: doc.rollout}
	case *groupDoc:
		if prev, dup := names.groups[doc.name]; dup {
			l.fail(s.file, doc.src, "metadata.name", "duplicate group name %q: also defined in %s:%d", doc.name, prev.File, prev.Line)
			return
		}
		names.groups[doc.name] = doc.src
		repo.groups = append(repo.groups, &Group{Name: doc.name, Source: doc.src, Priority: doc.priority, Selector: doc.selector, layer: l.prepare(s.file, &doc.spec)})
	case *hostDoc:
		if !l.checkHostName(s.file, doc, names.hosts) {
			return
		}
		labels := doc.labels
		if labels == nil {
			labels = map[string]string{}
		}
		repo.hosts[doc.name] = &Host{Name: doc.name, Source: doc.src, Labels: labels, MachineID: doc.machineID, machineIDSrc: doc.machineIDSrc, layer: l.prepare(s.file, &doc.spec)}
	case *Lock:
		repo.lock = doc
	}
	s.data = nil // let the garbage collector have it
}
