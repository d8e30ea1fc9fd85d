package hostspec

import (
	"maps"
	"path"
	"slices"

	"gopkg.in/yaml.v3"
)

// The Fleet, Group and Host documents, their metadata, a group's selector
// and the fleet's policy.

type fleetDoc struct {
	name      string
	src       Source
	spec      specDoc
	policy    Policy
	policySrc map[string]Source
	limits    limitsDoc
	rollout   *Rollout
}

type groupDoc struct {
	name     string
	src      Source
	selector Selector
	priority int
	spec     specDoc
	// sawSelector says whether `selector:` is written at all.
	sawSelector bool
}

type hostDoc struct {
	name     string
	nameNode *yaml.Node
	src      Source
	labels   map[string]string
	spec     specDoc
	// machineID (metadata.machineID) is the /etc/machine-id of the one
	// machine this host file is for.
	machineID    string
	machineIDSrc Source
}

var fleetObject = objectOf(
	headerKey[fleetDoc]("apiVersion"),
	headerKey[fleetDoc]("kind"),
	field[fleetDoc]{key: "metadata", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) {
		nameMetadata.decode(d, v, f, &doc.name)
	}},
	field[fleetDoc]{key: "spec", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) { specObject.decode(d, v, f, &doc.spec) }},
	field[fleetDoc]{key: "policy", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) { policyObject.decode(d, v, f, doc) }},
	field[fleetDoc]{key: "limits", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) { doc.limits = d.limits(v, f) }},
	field[fleetDoc]{key: "rollout", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) { doc.rollout = d.rollout(v, f) }},
)

var groupObject = objectOf(
	headerKey[groupDoc]("apiVersion"),
	headerKey[groupDoc]("kind"),
	field[groupDoc]{key: "metadata", parse: func(d *decoder, v *yaml.Node, f string, doc *groupDoc) {
		nameMetadata.decode(d, v, f, &doc.name)
	}},
	field[groupDoc]{key: "selector", parse: func(d *decoder, v *yaml.Node, f string, doc *groupDoc) {
		doc.sawSelector = true
		doc.selector = d.selector(v, f)
	}},
	field[groupDoc]{key: "priority", parse: func(d *decoder, v *yaml.Node, f string, doc *groupDoc) {
		doc.priority, _ = d.integer(v, f, -1_000_000, 1_000_000)
	}},
	field[groupDoc]{key: "spec", parse: func(d *decoder, v *yaml.Node, f string, doc *groupDoc) { specObject.decode(d, v, f, &doc.spec) }},
	policyElsewhere[groupDoc](),
)

var hostObject = objectOf(
	headerKey[hostDoc]("apiVersion"),
	headerKey[hostDoc]("kind"),
	field[hostDoc]{key: "metadata", parse: func(d *decoder, v *yaml.Node, f string, doc *hostDoc) { hostMetadata.decode(d, v, f, doc) }},
	field[hostDoc]{key: "spec", parse: func(d *decoder, v *yaml.Node, f string, doc *hostDoc) { specObject.decode(d, v, f, &doc.spec) }},
	policyElsewhere[hostDoc](),
)

// nameMetadata is the metadata of a Fleet or Group: its name.
var nameMetadata = objectOf(
	field[string]{key: "name", parse: func(d *decoder, v *yaml.Node, f string, name *string) {
		if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
			*name = s
		}
	}},
)

var hostMetadata = objectOf(
	field[hostDoc]{key: "name", parse: func(d *decoder, v *yaml.Node, f string, doc *hostDoc) {
		if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
			doc.name, doc.nameNode = s, v
		}
	}},
	field[hostDoc]{key: "labels", parse: func(d *decoder, v *yaml.Node, f string, doc *hostDoc) { doc.labels, _ = d.stringMap(v, f) }},
	field[hostDoc]{key: "machineID", parse: func(d *decoder, v *yaml.Node, f string, doc *hostDoc) {
		if s, ok := d.text(v, f); ok && d.checkMachineID(v, f, s) {
			doc.machineID, doc.machineIDSrc = s, d.src(v)
		}
	}},
)

func (d *decoder) group(root *yaml.Node) *groupDoc {
	doc := &groupDoc{src: d.src(root)}
	groupObject.decode(d, root, "", doc)
	if doc.name == "" && !d.hasKey(root, "metadata", "name") {
		d.failf(root, "metadata.name", "missing: every Group needs a name")
	}
	if !doc.sawSelector {
		d.failf(root, "selector", "missing: a Group needs a selector (hosts, labels and/or bucket) saying which hosts it applies to")
	}
	return doc
}

func (d *decoder) host(root *yaml.Node) *hostDoc {
	doc := &hostDoc{src: d.src(root)}
	hostObject.decode(d, root, "", doc)
	if doc.name == "" && !d.hasKey(root, "metadata", "name") {
		d.failf(root, "metadata.name", "missing: every Host needs a name (the file's base name)")
	}
	return doc
}

// policyElsewhere reports `policy:` outside the top level of fleet.yaml:
// only the fleet may add requirements to the hosts' trust configuration.
func policyElsewhere[T any]() field[T] {
	return field[T]{key: "policy", parse: func(d *decoder, v *yaml.Node, f string, _ *T) {
		msg := "policy is only allowed at the top level of fleet.yaml (kind: Fleet): it applies to the whole fleet"
		if f == "spec.policy" && d.file == FleetFile {
			msg = "policy belongs at the top level of fleet.yaml, next to spec, not under it"
		}
		d.failf(v, f, "%s", msg)
	}}
}

var policyObject = objectOf(
	field[fleetDoc]{key: "registries", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) {
		list, ok := d.checkedList(v, f, checkRegistryPrefix)
		if !ok {
			return
		}
		doc.policy.Registries = list
		doc.policySrc["registries"] = d.src(v)
	}},
	field[fleetDoc]{key: "requireSignatures", parse: func(d *decoder, v *yaml.Node, f string, doc *fleetDoc) {
		if b, ok := d.boolean(v, f); ok {
			doc.policy.RequireSignatures = b
			doc.policySrc["requireSignatures"] = d.src(v)
		}
	}},
)

// selectorDecoding is a selector being decoded: some says whether any
// part of it selects.
type selectorDecoding struct {
	s    Selector
	some bool
}

var selectorObject = objectOf(
	field[selectorDecoding]{key: "hosts", parse: func(d *decoder, v *yaml.Node, f string, sd *selectorDecoding) {
		globs, _ := d.stringList(v, f)
		for i, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				d.failf(v.Content[i], index(f, i), "invalid host glob %q: %v", g, err)
			}
		}
		sd.s.Hosts = globs
		sd.s.hostPrefixes = make([]string, len(globs))
		for i, g := range globs {
			sd.s.hostPrefixes[i] = globPrefix(g)
		}
		sd.some = sd.some || len(globs) > 0
	}},
	field[selectorDecoding]{key: "labels", parse: func(d *decoder, v *yaml.Node, f string, sd *selectorDecoding) {
		sd.s.Labels, _ = d.stringMap(v, f)
		for _, k := range slices.Sorted(maps.Keys(sd.s.Labels)) {
			sd.s.labelPairs = append(sd.s.labelPairs, [2]string{k, sd.s.Labels[k]})
		}
		sd.some = sd.some || len(sd.s.Labels) > 0
	}},
	field[selectorDecoding]{key: "bucket", parse: func(d *decoder, v *yaml.Node, f string, sd *selectorDecoding) {
		if text, lo, hi, ok := d.bucketRange(v, f); ok {
			sd.s.Bucket, sd.s.bucketLo, sd.s.bucketHi, sd.s.hasBucket = text, lo, hi, true
			sd.some = true
		}
	}},
)

func (d *decoder) selector(n *yaml.Node, field string) Selector {
	var sd selectorDecoding
	errsBefore := len(d.errs)
	selectorObject.decode(d, n, field, &sd)
	if n.Kind == yaml.MappingNode && !sd.some && len(d.errs) == errsBefore {
		d.failf(n, field, "empty selector: set hosts, labels and/or bucket (use hosts: [\"*\"] to match every host)")
	}
	return sd.s
}
