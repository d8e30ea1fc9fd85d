package hostspec

import (
	"errors"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// imageRef is an image reference that passed strict validation.
type imageRef struct {
	ref    string
	digest string // set when the reference is digest-pinned
}

// specDoc is the `spec:` of a Fleet, Group or Host as written.
type specDoc struct {
	image  opt[imageRef]
	vars   *varNode
	etc    []*etcEntry
	health []*healthEntry
	update updatePatch
	// recipients are the age recipients of `secrets.recipients`.
	recipients []recipientDecl
}

var specObject = objectOf(
	field[specDoc]{key: "image", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) {
		if img, ok := d.image(v, f); ok {
			s.image.put(img, d.src(v))
		}
	}},
	field[specDoc]{key: "etc", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) {
		d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
			if e := d.etcEntry(item, f); e != nil {
				s.etc = append(s.etc, e)
			}
		})
	}},
	field[specDoc]{key: "vars", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) {
		if v.Kind != yaml.MappingNode {
			if d.usable(v, f) {
				d.failf(v, f, "must be a mapping of names to values, got %s", describe(v))
			}
			return
		}
		s.vars, _ = d.varsNode(v, f, 0)
	}},
	field[specDoc]{key: "health", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) { s.health = d.healthList(v, f) }},
	field[specDoc]{key: "update", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) { updateObject.decode(d, v, f, &s.update) }},
	field[specDoc]{key: "secrets", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) { secretsObject.decode(d, v, f, s) }},
	policyElsewhere[specDoc](),
)

// image decodes an image reference written as the registry grammar wants.
func (d *decoder) image(v *yaml.Node, f string) (imageRef, bool) {
	ref, ok := d.text(v, f)
	if !ok {
		return imageRef{}, false
	}
	parsed, err := ParseImageReference(ref)
	if err != nil {
		hint := " (want registry/repository:tag or registry/repository@sha256:digest)"
		if errors.Is(err, errTransportPrefix) {
			hint = ""
		}
		d.failf(v, f, "invalid image reference %q: %v%s", ref, err, hint)
		return imageRef{}, false
	}
	img := imageRef{ref: ref}
	if dg, ok := parsed.(name.Digest); ok {
		img.digest = dg.DigestStr()
	}
	return img, true
}

// healthList decodes `health:`: checks with unique names.
func (d *decoder) healthList(v *yaml.Node, f string) []*healthEntry {
	var list []*healthEntry
	seen := map[string]*healthEntry{}
	d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
		h := d.healthEntry(item, f)
		if h == nil {
			return
		}
		if prev := seen[h.name]; prev != nil {
			d.failf(item, f, "duplicate health check %q (first at line %d)", h.name, prev.src.Line)
			return
		}
		seen[h.name] = h
		list = append(list, h)
	})
	return list
}
