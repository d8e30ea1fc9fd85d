package etcoverlay

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// ReservedPath is a host path the fleet repository may not write, remove or
// replace through the /etc overlay: a file or a directory (with
// everything below it).
type ReservedPath struct {
	Path string
	Why  string // what the host's trust loses if the fleet could change it
}

// ReservedPaths are what the host's trust rests on. The design promise is
// that the fleet repository can only tighten host-local trust; an /etc
// entry that rewrote these would loosen it (turn signature checks off,
// point pulls elsewhere, swap keys). They are refused on every host unless
// its own configuration allows the path (etc.allowReserved), and `bootsync
// validate` flags entries that target them. The agent adds every file its
// configuration names (keys, CA bundles, credentials, the state directory).
//
// This is the one list: code that teaches the agent to read another
// trust-bearing file adds it here.
var ReservedPaths = []ReservedPath{
	{"/etc/bootsync", "the agent's own configuration, keys and credentials"},
	{"/etc/containers/policy.json", "containers-policy: which images bootc accepts and whose signatures it requires"},
	{"/etc/containers/registries.d", "where signatures of images are looked up"},
	{"/etc/containers/registries.conf", "registry mirrors and rewrites: where image pulls go"},
	{"/etc/containers/registries.conf.d", "registry mirrors and rewrites: where image pulls go"},
	{"/etc/containers/certs.d", "TLS trust for registries"},
	{"/etc/pki/containers", "the public keys image signatures are checked against"},
	{"/etc/ostree/auth.json", "the registry credentials bootc pulls with"},
	{"/etc/machine-id", "the machine's identity, which a host file's metadata.machineID is checked against"},
}

// Reserved decides which /etc paths this host's overlay may not touch.
type Reserved struct {
	paths   []ReservedPath
	allowed []string
}

// NewReserved returns the rules: ReservedPaths, plus named (host paths of
// the files the agent's configuration names, each reserved as "named in
// the agent's configuration"), minus allowed (paths the host-local
// configuration lets the fleet manage: a file, or a directory and
// everything below it). named paths outside /etc are ignored: the overlay
// cannot reach them.
func NewReserved(named, allowed []string) (*Reserved, error) {
	r := &Reserved{paths: slices.Clone(ReservedPaths)}
	for _, p := range named {
		if p == "" {
			continue
		}
		p = path.Clean(filepath.ToSlash(p))
		if p == "/etc" || strings.HasPrefix(p, "/etc/") {
			r.paths = append(r.paths, ReservedPath{Path: p, Why: "named in the agent's configuration"})
		}
	}
	for _, a := range allowed {
		if !strings.HasPrefix(a, "/etc/") || path.Clean(a) != a {
			return nil, fmt.Errorf("allowed reserved path %q: want a normalized absolute path under /etc", a)
		}
		r.allowed = append(r.allowed, a)
	}
	return r, nil
}

// HostPath maps a path of the machine the agent runs on to the host path
// the overlay writes, for a root other than "/" (tests, image builds).
func HostPath(root, p string) string {
	if root == "" || root == "/" || p == "" {
		return p
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return p
	}
	return "/" + filepath.ToSlash(rel)
}

// within reports whether p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// Check returns the reserved path that p touches (p is it, below it, or a
// directory above it), unless the host allows p.
func (r *Reserved) Check(p string) (ReservedPath, bool) {
	for _, a := range r.allowed {
		if within(p, a) {
			return ReservedPath{}, false
		}
	}
	for _, rp := range r.paths {
		if within(p, rp.Path) || within(rp.Path, p) {
			return rp, true
		}
	}
	return ReservedPath{}, false
}

// ReservedPathError is a spec that asks to write or remove reserved paths:
// the agent refuses the whole pass (reason reserved-path) and changes
// nothing.
type ReservedPathError struct {
	Entries []ReservedEntry
}

// ReservedEntry is one refused entry.
type ReservedEntry struct {
	Path     string
	Reserved ReservedPath
	Source   hostspec.Source
}

func (e *ReservedPathError) Error() string {
	parts := make([]string, len(e.Entries))
	for i, x := range e.Entries {
		parts[i] = fmt.Sprintf("%s (%s) is %s", x.Path, x.Source, describeReserved(x.Path, x.Reserved))
	}
	return fmt.Sprintf("the fleet repository targets reserved paths, which this host's configuration does not allow (etc.allowReserved): %s; nothing was changed", strings.Join(parts, "; "))
}

func describeReserved(p string, rp ReservedPath) string {
	if p == rp.Path {
		return "reserved: " + rp.Why
	}
	return fmt.Sprintf("reserved by %s: %s", rp.Path, rp.Why)
}

// CheckFiles returns a *ReservedPathError naming every file of a resolved
// spec that touches a reserved path, or nil.
func (r *Reserved) CheckFiles(files []hostspec.EtcFile) error {
	var out []ReservedEntry
	for _, f := range files {
		if rp, ok := r.Check(f.Path); ok {
			out = append(out, ReservedEntry{Path: f.Path, Reserved: rp, Source: f.Source})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &ReservedPathError{Entries: out}
}

// Problems flags the repository's entries that touch reserved paths, at
// their file and line, for `bootsync validate`.
func (r *Reserved) Problems(targets []hostspec.EtcTarget) hostspec.ErrorList {
	var out hostspec.ErrorList
	for _, t := range targets {
		rp, ok := r.Check(t.Path)
		if !ok {
			continue
		}
		what := t.Path
		if t.Source.From != "" {
			what += " (from " + t.Source.From + ")"
		}
		out = append(out, &hostspec.Error{File: t.Source.File, Line: t.Source.Line, Column: t.Source.Column, Field: t.Field,
			Msg: fmt.Sprintf("%s is %s; hosts refuse it unless their own configuration allows the path in etc.allowReserved (validate --allow-reserved)", what, describeReserved(t.Path, rp))})
	}
	return out
}
