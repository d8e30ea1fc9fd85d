package hostspec

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// etcEntry is one item of `etc:` as written, before directory expansion.
type etcEntry struct {
	field       string
	src         Source
	path        opt[string]
	from        opt[string]
	sops        opt[string] // a SOPS file of the repository (see schema_secrets.go)
	age         opt[string] // a plain age file of the repository
	content     opt[[]byte]
	contentNode *yaml.Node
	template    bool
	mode        opt[FileMode]
	owner       opt[string]
	group       opt[string]
	absent      bool
	onChange    *OnChange
}

var etcObject = objectOf(
	optKey("path", func(e *etcEntry) *opt[string] { return &e.path }, checkedText(anyText)),
	optKey("from", func(e *etcEntry) *opt[string] { return &e.from }, checkedText(checkFromPath)),
	optKey("sops", func(e *etcEntry) *opt[string] { return &e.sops }, checkedText(checkSecretPath)),
	optKey("age", func(e *etcEntry) *opt[string] { return &e.age }, checkedText(checkSecretPath)),
	field[etcEntry]{key: "content", parse: func(d *decoder, v *yaml.Node, f string, e *etcEntry) {
		if b, ok := d.content(v, f); ok {
			e.content.put(b, d.src(v))
			e.contentNode = v
		}
	}},
	field[etcEntry]{key: "template", parse: func(d *decoder, v *yaml.Node, f string, e *etcEntry) { e.template, _ = d.boolean(v, f) }},
	optKey("mode", func(e *etcEntry) *opt[FileMode] { return &e.mode }, (*decoder).fileMode),
	optKey("owner", func(e *etcEntry) *opt[string] { return &e.owner }, checkedText(checkAccount)),
	optKey("group", func(e *etcEntry) *opt[string] { return &e.group }, checkedText(checkAccount)),
	field[etcEntry]{key: "absent", parse: func(d *decoder, v *yaml.Node, f string, e *etcEntry) { e.absent, _ = d.boolean(v, f) }},
	field[etcEntry]{key: "onChange", parse: func(d *decoder, v *yaml.Node, f string, e *etcEntry) { e.onChange = d.onChange(v, f) }},
)

// fileMode decodes a mode, which must be a quoted octal string: unquoted,
// YAML reads 0644 as the number 420.
func (d *decoder) fileMode(v *yaml.Node, f string) (FileMode, bool) {
	if !d.usable(v, f) {
		return 0, false
	}
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		hint := ""
		if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
			hint = fmt.Sprintf(`: quote it, as in mode: "%s" (unquoted, YAML reads %s as a number)`, v.Value, v.Value)
		}
		d.failf(v, f, "must be a quoted octal string like \"0644\", got %s%s", describe(v), hint)
		return 0, false
	}
	m, err := ParseFileMode(v.Value)
	if err != nil {
		d.failf(v, f, "%v", err)
		return 0, false
	}
	return m, true
}

func (d *decoder) etcEntry(n *yaml.Node, field string) *etcEntry {
	e := &etcEntry{field: field, src: d.src(n)}
	errsBefore := len(d.errs)
	if !etcObject.decode(d, n, field, e) || len(d.errs) > errsBefore {
		return nil
	}
	rules := d.etcEntryRules
	if e.secret() {
		rules = d.secretEntryRules
	}
	if !rules(n, field, e) {
		return nil
	}
	if e.path.set {
		// A directory `from:` may target /etc itself; that is checked once the
		// repository says what `from:` is.
		allowRoot := e.from.set
		if msg := checkEtcPath(e.path.v, allowRoot); msg != "" {
			d.failf(lookup(n, "path"), join(field, "path"), "%s", msg)
			return nil
		}
	}
	return e
}

// etcEntryRules checks the rules across the fields of one entry.
func (d *decoder) etcEntryRules(n *yaml.Node, field string, e *etcEntry) bool {
	switch {
	case e.absent:
		var extra []string
		for _, x := range []struct {
			name string
			set  bool
		}{{"content", e.content.set}, {"from", e.from.set}, {"sops", e.sops.set}, {"age", e.age.set}, {"template", lookup(n, "template") != nil}, {"mode", e.mode.set}, {"owner", e.owner.set}, {"group", e.group.set}} {
			if x.set {
				extra = append(extra, x.name)
			}
		}
		if len(extra) > 0 {
			d.failf(n, field, "absent: true removes the file, so %s cannot be set with it", strings.Join(extra, ", "))
			return false
		}
		if !e.path.set {
			d.failf(n, field, "absent: true needs path: the file to remove")
			return false
		}
	case e.content.set && e.from.set:
		d.failf(n, field, "content and from are both set: use one of them")
		return false
	case !e.content.set && !e.from.set:
		d.failf(n, field, "set content, from, or absent: true")
		return false
	case e.content.set && !e.path.set:
		d.failf(n, field, "inline content needs path: the file under /etc to write")
		return false
	}
	return true
}

var onChangeObject = objectOf(
	unitList("restart", func(oc *OnChange) *[]string { return &oc.Restart }),
	unitList("reload", func(oc *OnChange) *[]string { return &oc.Reload }),
	field[OnChange]{key: "reboot", parse: func(d *decoder, v *yaml.Node, f string, oc *OnChange) { oc.Reboot, _ = d.boolean(v, f) }},
)

// unitList decodes a list of systemd units.
func unitList(key string, at func(*OnChange) *[]string) field[OnChange] {
	return field[OnChange]{key: key, parse: func(d *decoder, v *yaml.Node, f string, oc *OnChange) {
		if units, ok := d.checkedList(v, f, checkUnit); ok {
			*at(oc) = units
		}
	}}
}

func (d *decoder) onChange(n *yaml.Node, field string) *OnChange {
	oc := &OnChange{}
	onChangeObject.decode(d, n, field, oc)
	if len(oc.Restart) == 0 && len(oc.Reload) == 0 && !oc.Reboot {
		return nil
	}
	return oc
}
