package hostspec

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

var knownKinds = []string{KindFleet, KindGroup, KindHost, KindLock}

// decodeFile decodes one file of the fleet repository. wantKind is the kind
// the file's location calls for. It returns a *fleetDoc, *groupDoc,
// *hostDoc or *Lock (nil when not even the header could be read), and
// every problem found.
func decodeFile(file string, data []byte, wantKind string) (any, ErrorList) {
	d := &decoder{file: file}
	root := d.parseDocument(data)
	if root == nil {
		return nil, d.errs
	}
	kind, ok := d.header(root, wantKind)
	if !ok {
		return nil, d.errs
	}
	d.kind = kind
	var doc any
	switch kind {
	case KindFleet:
		fleet := &fleetDoc{src: d.src(root), policySrc: map[string]Source{}}
		fleetObject.decode(d, root, "", fleet)
		doc = fleet
	case KindGroup:
		doc = d.group(root)
	case KindHost:
		doc = d.host(root)
	case KindLock:
		lock := &Lock{Images: map[string]string{}, sources: map[string]Source{}}
		lockObject.decode(d, root, "", lock)
		doc = lock
	}
	// The document is returned even with problems, so that Load can still
	// check the files its valid parts refer to and report those too.
	return doc, d.errs
}

// header checks apiVersion and kind before anything else: with an unknown
// version the rest of the document cannot be read with this schema.
func (d *decoder) header(root *yaml.Node, wantKind string) (string, bool) {
	if !d.usable(root, "") {
		return "", false
	}
	if root.Kind != yaml.MappingNode {
		d.failf(root, "", "a document must be a mapping with apiVersion and kind, got %s", describe(root))
		return "", false
	}
	ok := d.apiVersion(root)
	kindNode := lookupLast(root, "kind")
	if kindNode == nil {
		d.failf(root, "kind", "missing: add `kind: %s`", wantKind)
		return "", false
	}
	kind, kok := d.text(kindNode, "kind")
	if !kok {
		return "", false
	}
	if !slices.Contains(knownKinds, kind) {
		msg := fmt.Sprintf("unknown kind %q (known kinds: %s)", kind, strings.Join(knownKinds, ", "))
		if s := suggest(kind, knownKinds); s != "" {
			msg = fmt.Sprintf("unknown kind %q (did you mean %q?)", kind, s)
		}
		d.failf(kindNode, "kind", "%s", msg)
		return "", false
	}
	if kind != wantKind {
		switch {
		case kind == KindFleet:
			d.failf(kindNode, "kind", "a second Fleet document: the fleet is defined once, in %s; this file (under %s) must hold a %s", FleetFile, path.Dir(d.file), wantKind)
		case wantKind == KindFleet:
			d.failf(kindNode, "kind", "%s must hold the kind: Fleet document, found kind: %s", FleetFile, kind)
		default:
			d.failf(kindNode, "kind", "kind: %s does not belong in %s: %s", kind, d.file, placeOf(kind))
		}
		return "", false
	}
	return kind, ok
}

// apiVersion checks that the document is written for this schema.
func (d *decoder) apiVersion(root *yaml.Node) bool {
	versionNode := lookupLast(root, "apiVersion")
	if versionNode == nil {
		d.failf(root, "apiVersion", "missing: add `apiVersion: %s`", APIVersion)
		return false
	}
	v, ok := d.text(versionNode, "apiVersion")
	if !ok {
		return false
	}
	if v != APIVersion {
		d.failf(versionNode, "apiVersion", "unsupported version %q: this build of bootsync supports only %s", v, APIVersion)
		return false
	}
	return true
}

func placeOf(kind string) string {
	switch kind {
	case KindGroup:
		return "Group documents live in " + GroupsDir + "/"
	case KindHost:
		return "Host documents live in " + HostsDir + "/"
	case KindLock:
		return "the Lock document is " + LockFile
	}
	return "Fleet is " + FleetFile
}

// hasKey reports whether root.outer.inner is written at all, so a missing
// name is not reported again after its value was found invalid.
func (d *decoder) hasKey(root *yaml.Node, outer, inner string) bool {
	m := lookup(root, outer)
	return m != nil && lookup(m, inner) != nil
}

// lookupLast is lookup for a key written more than once: the header reads
// the last one (the duplicate is reported with the rest of the document).
func lookupLast(m *yaml.Node, key string) *yaml.Node {
	var found *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			found = m.Content[i+1]
		}
	}
	return found
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
