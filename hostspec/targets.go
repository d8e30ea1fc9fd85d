package hostspec

import (
	"slices"
)

// EtcTarget is one /etc entry as the repository writes it, in the file
// (fleet, group or host) that writes it: a file of a `from:` directory is
// one target of its own.
type EtcTarget struct {
	Path   string
	Absent bool
	Mode   FileMode
	// Source is the entry's place; Source.From names the repository file
	// of a `from:` directory.
	Source Source
	// Field is the provenance key, "etc[<path>]".
	Field string
}

// EtcTargets returns the /etc entries of every layer, sorted by file, line
// and path: what any host could be asked to write, each named once, for
// checks that do not depend on the host (reserved paths in validate).
func (r *Repo) EtcTargets() []EtcTarget {
	var out []EtcTarget
	add := func(ly *layer) {
		if ly == nil {
			return
		}
		for _, it := range ly.etc {
			out = append(out, EtcTarget{Path: it.path, Absent: it.absent, Mode: it.mode, Source: it.src, Field: it.provKey})
		}
	}
	add(r.fleet.layer)
	for _, g := range r.groups {
		add(g.layer)
	}
	for _, n := range r.names {
		add(r.hosts[n].layer)
	}
	slices.SortFunc(out, func(a, b EtcTarget) int {
		return compareErrors(&Error{File: a.Source.File, Line: a.Source.Line, Column: a.Source.Column, Field: a.Path},
			&Error{File: b.Source.File, Line: b.Source.Line, Column: b.Source.Column, Field: b.Path})
	})
	return out
}

// Warnings returns what is allowed but should not go unnoticed, located
// like errors (file:line:column, field) with a message starting
// "warning:": today, modes with set-user-ID, set-group-ID or sticky bits.
func (r *Repo) Warnings() ErrorList {
	var out ErrorList
	for _, t := range r.EtcTargets() {
		if t.Absent {
			continue
		}
		if msg := ModeWarning(t.Mode); msg != "" {
			out = append(out, &Error{File: t.Source.File, Line: t.Source.Line, Column: t.Source.Column, Field: t.Field, Msg: "warning: " + msg})
		}
	}
	return out
}
