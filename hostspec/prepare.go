package hostspec

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"slices"
	"strings"
)

// layer is the `spec:` of one document, checked and prepared: directory
// entries are expanded, files read and templates parsed once.
type layer struct {
	image  opt[imageRef]
	vars   *varNode
	etc    []*etcItem     // one per target path, sorted by path
	health []*healthEntry // sorted by name
	update updatePatch
	// recipients are the layer's secrets.recipients.
	recipients []recipientDecl
	// reads are the repository paths the layer's `from:` entries name and
	// the real paths they resolved to (see Repo.HostsReading).
	reads []string
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
	// secret is the encrypted file of a `sops:` or `age:` entry; tmpl,
	// when set, is its template.
	secret *secretSource
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

// prepare turns a decoded spec into a layer: it reads `from:` files and
// directories, parses templates and resolves entries of one layer that
// name the same path.
func (l *loader) prepare(file string, s *specDoc) *layer {
	ly := &layer{image: s.image, vars: s.vars, update: s.update, recipients: s.recipients}
	l.reads = nil
	defer func() { ly.reads = l.reads }()
	// The decoded document stays as it is (it may be shared); the layer's
	// checks are copies that carry their provenance keys.
	ly.health = make([]*healthEntry, len(s.health))
	for i, h := range s.health {
		c := *h
		c.keys = l.healthKeys(h.name)
		ly.health[i] = &c
	}
	slices.SortFunc(ly.health, func(a, b *healthEntry) int { return strings.Compare(a.name, b.name) })
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
	k := newHealthKeys(name)
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
	case e.secret():
		l.prepareSecret(file, e, base, add)
	case e.content.set:
		base.mode = 0o644
		if e.mode.set {
			base.mode = e.mode.v
		}
		if e.template {
			if base.tmpl = l.inlineTemplate(file, e); base.tmpl == nil {
				return
			}
		} else {
			base.static = e.content.v
			base.sha = sha256Hex(e.content.v)
		}
		add(&base)
	case e.from.set:
		l.prepareFrom(file, e, base, add)
	}
}

// inlineTemplate parses an entry's content as a template; nil (with the
// problem recorded) when it does not parse.
func (l *loader) inlineTemplate(file string, e *etcEntry) *tmpl {
	t, perr := parseTemplate(inlineTemplateName, file, e.contentNode, e.content.v)
	if perr != nil {
		perr.Field = join(e.field, "content")
		l.errs = append(l.errs, perr)
		return nil
	}
	return t
}

// prepareFrom adds the items of an entry whose content comes from the
// repository: one file, or every file under a directory.
func (l *loader) prepareFrom(file string, e *etcEntry, base etcItem, add func(*etcItem)) {
	from := e.from.v
	fromField := join(e.field, "from")
	l.reads = append(l.reads, from)
	real, err := l.rfs.real(from)
	if err == nil {
		l.reads = append(l.reads, real.path)
	}
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
			l.reads = append(l.reads, f.real.path)
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
