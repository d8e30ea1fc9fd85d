package hostspec

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// LoadOption configures Load.
type LoadOption func(*loadConfig) error

type loadConfig struct {
	revision string
	ceilings Limits
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

// layer is the `spec:` of one document, checked and prepared: directory
// entries are expanded, files read and templates parsed once.
type layer struct {
	image  opt[imageRef]
	vars   *varNode
	etc    []*etcItem     // one per target path, sorted by path
	health []*healthPatch // sorted by name
	update updatePatch
}

// etcItem is one target path of a layer.
type etcItem struct {
	path     string
	provKey  string   // "etc[<path>]"
	parents  []string // directories between /etc and path, for conflict checks
	absent   bool
	mode     FileMode
	owner    string
	group    string
	onChange *OnChange
	src      Source
	// explicit is true for entries that name the path themselves; they win
	// over files expanded from a directory in the same layer.
	explicit bool
	static   []byte // content when not templated
	sha      string // of static
	tmpl     *tmpl
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
	for _, dir := range []struct{ dir, kind string }{{GroupsDir, KindGroup}, {HostsDir, KindHost}} {
		files, err := l.yamlFiles(dir.dir)
		if err != nil {
			return nil, err
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
	hostFiles := map[string]string{}
	groupFiles := map[string]Source{}
	for _, s := range sources {
		if err := l.ctx.Err(); err != nil {
			return nil, fmt.Errorf("load fleet repository: %w", err)
		}
		l.errs = append(l.errs, s.errs...)
		if len(s.errs) > 0 {
			// Still look at the files its valid parts refer to, and at its
			// name, so that one run reports every problem.
			l.prepareOnly(s.doc)
			if doc, ok := s.doc.(*hostDoc); ok && doc != nil && doc.nameNode != nil {
				l.checkHostName(s.file, doc, hostFiles)
			}
			continue
		}
		switch doc := s.doc.(type) {
		case *fleetDoc:
			repo.fleet = &Fleet{Name: doc.name, Source: doc.src, Policy: doc.policy, policySrc: doc.policySrc, layer: l.prepare(s.file, &doc.spec), Rollout: doc.rollout}
		case *groupDoc:
			if prev, dup := groupFiles[doc.name]; dup {
				l.fail(s.file, doc.src, "metadata.name", "duplicate group name %q: also defined in %s:%d", doc.name, prev.File, prev.Line)
				continue
			}
			groupFiles[doc.name] = doc.src
			repo.groups = append(repo.groups, &Group{Name: doc.name, Source: doc.src, Priority: doc.priority, Selector: doc.selector, layer: l.prepare(s.file, &doc.spec)})
		case *hostDoc:
			if !l.checkHostName(s.file, doc, hostFiles) {
				continue
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
	repo.names = make([]string, 0, len(repo.hosts))
	for n := range repo.hosts {
		repo.names = append(repo.names, n)
	}
	slices.Sort(repo.names)
	repo.images = repo.collectImages()
	return repo, nil
}

// readFleet reads and decodes fleet.yaml first: its limits apply to
// every file read after it.
func (l *loader) readFleet(ceilings Limits) []*source {
	var sources []*source
	var fleetLimits limitsDoc
	if data, err := l.readYAML(FleetFile); err == nil {
		s := &source{file: FleetFile, wantKind: KindFleet, data: data, decoded: true}
		s.doc, s.errs = decodeFile(s.file, s.data, s.wantKind)
		if doc, ok := s.doc.(*fleetDoc); ok {
			fleetLimits = doc.limits
		}
		sources = append(sources, s)
	} else if errors.Is(err, fs.ErrNotExist) {
		l.errs = append(l.errs, &Error{File: FleetFile, Msg: "missing: a fleet repository needs fleet.yaml (kind: Fleet) at its root"})
	}
	l.limits = newEffectiveLimits(fleetLimits, ceilings)
	return sources
}

func (l *loader) prepareOnly(doc any) {
	switch doc := doc.(type) {
	case *fleetDoc:
		l.prepare(doc.src.File, &doc.spec)
	case *groupDoc:
		l.prepare(doc.src.File, &doc.spec)
	case *hostDoc:
		l.prepare(doc.src.File, &doc.spec)
	}
}

// readYAML reads a document file, recording problems; a missing file is
// returned as fs.ErrNotExist without a problem (the caller decides).
func (l *loader) readYAML(name string) ([]byte, error) {
	data, _, err := l.rfs.readFile(name, "documentSize")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errSymlinkEscapes) {
			return nil, err
		}
		if e, ok := l.limitProblem(name, Source{}, "", name, err); ok {
			l.addLimitProblem(e)
			return nil, err
		}
		l.errs = append(l.errs, &Error{File: name, Msg: "cannot read: " + problem(err)})
		return nil, err
	}
	return data, nil
}

// yamlFiles lists the *.yaml files under dir, recursively, sorted. A
// missing directory is fine. *.yml files are refused rather than silently
// ignored.
func (l *loader) yamlFiles(dir string) ([]string, error) {
	e, err := l.rfs.real(dir)
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errSymlinkEscapes) {
		return nil, nil
	}
	if err != nil {
		l.errs = append(l.errs, &Error{File: dir, Msg: "cannot read: " + problem(err)})
		return nil, nil
	}
	if !e.mode.IsDir() {
		l.errs = append(l.errs, &Error{File: dir, Msg: "must be a directory of *.yaml files"})
		return nil, nil
	}
	var out []string
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := l.ctx.Err(); err != nil {
			return fmt.Errorf("load fleet repository: %w", err)
		}
		real, err := l.rfs.real(dir)
		if err != nil {
			l.errs = append(l.errs, &Error{File: dir, Msg: "cannot read: " + problem(err)})
			return nil
		}
		entries, err := fs.ReadDir(l.rfs.fsys, real.path)
		if err != nil {
			l.errs = append(l.errs, &Error{File: dir, Msg: "cannot list: " + problem(err)})
			return nil
		}
		for _, de := range entries {
			name := path.Join(dir, de.Name())
			if de.Type()&(fs.ModeSymlink|fs.ModeIrregular) == 0 {
				l.rfs.listed(name, real, de)
			}
			switch {
			case de.Type()&fs.ModeIrregular != 0:
				// A submodule or mount point: report it rather than skip
				// hosts or groups that a reviewer would expect to count.
				_, err := fs.Lstat(l.rfs.fsys, path.Join(real.path, de.Name()))
				if err == nil {
					err = &fs.PathError{Op: "lstat", Path: name, Err: errors.New("is a special file")}
				}
				l.errs = append(l.errs, &Error{File: name, Msg: "cannot read: " + problem(err)})
			case de.IsDir():
				if err := walk(name); err != nil {
					return err
				}
			case strings.HasSuffix(de.Name(), ".yaml"):
				out = append(out, name)
			case strings.HasSuffix(de.Name(), ".yml"):
				l.errs = append(l.errs, &Error{File: name, Msg: "rename to .yaml: only *.yaml files are read"})
			}
		}
		return nil
	}
	return out, walk(dir)
}

// decodeAll decodes the sources in parallel: decoding is pure CPU work,
// while reading stays sequential (not every fs.FS is safe for concurrent
// use).
func (l *loader) decodeAll(sources []*source) error {
	workers := min(runtime.GOMAXPROCS(0), 1+len(sources)/64)
	var wg sync.WaitGroup
	next := make(chan *source)
	for range workers {
		wg.Go(func() {
			for s := range next {
				s.doc, s.errs = decodeFile(s.file, s.data, s.wantKind)
			}
		})
	}
	var err error
	for _, s := range sources {
		if err = l.ctx.Err(); err != nil {
			break
		}
		if s.decoded {
			continue
		}
		next <- s
	}
	close(next)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("load fleet repository: %w", err)
	}
	return nil
}

// prepare turns a decoded spec into a layer: it reads `from:` files and
// directories, parses templates and resolves entries of one layer that
// name the same path.
func (l *loader) prepare(file string, s *specDoc) *layer {
	ly := &layer{image: s.image, vars: s.vars, update: s.update}
	ly.health = slices.Clone(s.health)
	for _, h := range ly.health {
		h.keys = l.healthKeys(h.name)
	}
	slices.SortFunc(ly.health, func(a, b *healthPatch) int { return strings.Compare(a.name, b.name) })
	byPath := map[string]*etcItem{}
	add := func(it *etcItem) {
		it.provKey = "etc[" + it.path + "]"
		it.parents = nil
		for q := path.Dir(it.path); q != "/etc" && q != "/" && q != "."; q = path.Dir(q) {
			it.parents = append(it.parents, q)
		}
		prev := byPath[it.path]
		switch {
		case prev == nil:
		case prev.explicit && it.explicit:
			l.fail(file, it.src, "spec.etc", "path %s is set twice in this file (also at line %d)", it.path, prev.src.Line)
			return
		case prev.explicit && !it.explicit:
			return // an explicit entry wins over a directory's file
		}
		byPath[it.path] = it
	}
	for _, e := range s.etc {
		l.prepareEtc(file, e, add)
	}
	ly.etc = make([]*etcItem, 0, len(byPath))
	for _, it := range byPath {
		ly.etc = append(ly.etc, it)
	}
	slices.SortFunc(ly.etc, func(a, b *etcItem) int { return strings.Compare(a.path, b.path) })
	return ly
}

// healthKeys returns the provenance keys of a check, shared by every layer
// and host that names it.
func (l *loader) healthKeys(name string) *healthKeys {
	if k, ok := l.hkeys[name]; ok {
		return k
	}
	base := "health[" + name + "]"
	k := &healthKeys{check: base, systemd: base + ".systemd", http: base + ".http", tcp: base + ".tcp",
		command: base + ".command", expect: base + ".expect", timeout: base + ".timeout",
		interval: base + ".interval", retries: base + ".retries", required: base + ".required"}
	l.hkeys[name] = k
	return k
}

func (l *loader) prepareEtc(file string, e *etcEntry, add func(*etcItem)) {
	base := etcItem{
		path:     e.path.v,
		absent:   e.absent,
		owner:    "root",
		group:    "root",
		onChange: e.onChange,
		src:      e.src,
		explicit: true,
	}
	if e.owner.set {
		base.owner = e.owner.v
	}
	if e.group.set {
		base.group = e.group.v
	}
	switch {
	case e.absent:
		base.owner, base.group = "", ""
		add(&base)
	case e.content.set:
		base.mode = 0o644
		if e.mode.set {
			base.mode = e.mode.v
		}
		if e.template {
			t, perr := parseTemplate(inlineTemplateName, file, e.contentNode, e.content.v)
			if perr != nil {
				perr.Field = join(e.field, "content")
				l.errs = append(l.errs, perr)
				return
			}
			base.tmpl = t
		} else {
			base.static = e.content.v
			base.sha = sha256Hex(e.content.v)
		}
		add(&base)
	case e.from.set:
		from := e.from.v
		fromField := join(e.field, "from")
		real, err := l.rfs.real(from)
		if err != nil {
			l.fail(file, e.from.src, fromField, "from %q: %s", from, problem(err))
			return
		}
		if real.mode.IsDir() {
			target := "/etc"
			if e.path.set {
				target = e.path.v
			}
			files, err := l.rfs.walkFiles(from)
			if err != nil {
				l.fail(file, e.from.src, fromField, "from %q: %s", from, problem(err))
				return
			}
			for _, f := range files {
				it := base
				it.path = path.Join(target, f.rel)
				it.explicit = false
				it.src.From = path.Join(from, f.rel)
				if msg := checkEtcPath(it.path, false); msg != "" {
					l.fail(file, e.from.src, fromField, "file %s: %s", it.src.From, msg)
					continue
				}
				if l.fileContent(file, &it, e, it.src.From, f.real) {
					add(&it)
				}
			}
			return
		}
		if !e.path.set {
			l.fail(file, e.src, e.field, "from %q is a file: set path: to say where under /etc it goes", from)
			return
		}
		if e.path.v == "/etc" {
			l.fail(file, e.path.src, join(e.field, "path"), "path /etc is the directory itself: name a file under /etc (or make from: a directory)")
			return
		}
		base.src.From = from
		if l.fileContent(file, &base, e, from, real) {
			add(&base)
		}
	}
}

// fileContent fills in the content (or template) and mode of an item whose
// content comes from a repository file.
func (l *loader) fileContent(file string, it *etcItem, e *etcEntry, from string, real realEntry) bool {
	data, _, err := l.rfs.readFile(real.path, "fileSize")
	if err != nil {
		if le, ok := l.limitProblem(file, e.from.src, join(e.field, "from"), from, err); ok {
			l.addLimitProblem(le)
			return false
		}
		l.fail(file, e.from.src, join(e.field, "from"), "from %q: %s", from, problem(err))
		return false
	}
	// Executable files in the repository stay executable unless the entry
	// says otherwise.
	it.mode = 0o644
	if e.mode.set {
		it.mode = e.mode.v
	} else if perm, err := l.rfs.perm(real); err != nil {
		l.fail(file, e.from.src, join(e.field, "from"), "from %q: %s", from, problem(err))
		return false
	} else if perm&0o111 != 0 {
		it.mode = 0o755
	}
	if !e.template {
		it.static = data
		it.sha = sha256Hex(data)
		return true
	}
	if t, ok := l.templates[from]; ok {
		it.tmpl = t
		return true
	}
	if l.templateErrs[from] {
		return false
	}
	t, perr := parseTemplate(from, from, nil, data)
	if perr != nil {
		l.templateErrs[from] = true
		l.errs = append(l.errs, perr)
		return false
	}
	l.templates[from] = t
	it.tmpl = t
	return true
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
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
	out := make([]*Host, len(r.names))
	for i, n := range r.names {
		out[i] = r.hosts[n]
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
