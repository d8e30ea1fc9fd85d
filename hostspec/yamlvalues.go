package hostspec

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Decoders of the values of the YAML walker (yamlnode.go): scalars of each
// type, lists and maps of strings, inline content and template variables.

// scalarText returns the text of a scalar written as a string, number or
// boolean. Numbers and booleans are accepted as their literal text, so
// `ring: 0` and `ring: "0"` mean the same label value.
func (d *decoder) scalarText(n *yaml.Node, field string) (string, bool) {
	if !d.usable(n, field) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.failf(n, field, "must be a string, got %s", describe(n))
		return "", false
	}
	switch n.Tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return n.Value, true
	case "!!null":
		d.failf(n, field, "must be a string, got %s", describe(n))
		return "", false
	}
	d.failf(n, field, "unsupported YAML tag %s", n.Tag)
	return "", false
}

// text is scalarText that also refuses the empty string.
func (d *decoder) text(n *yaml.Node, field string) (string, bool) {
	s, ok := d.scalarText(n, field)
	if ok && s == "" {
		d.failf(n, field, "must not be empty")
		return "", false
	}
	if ok && !d.visible(n, field, s) {
		return "", false
	}
	return s, ok
}

// visible refuses control and invisible formatting characters (bidi
// overrides, zero-width characters) in names, labels, paths and other
// single-line text: they make a PR comment or a terminal show something
// other than what is there.
func (d *decoder) visible(n *yaml.Node, field, s string) bool {
	if msg := hiddenCharProblem(s); msg != "" {
		d.failf(n, field, "%s", msg)
		return false
	}
	return true
}

// durationAtLeast is duration with a floor.
func (d *decoder) durationAtLeast(n *yaml.Node, field string, floor time.Duration) (Duration, bool) {
	x, ok := d.duration(n, field)
	if ok && time.Duration(x) < floor {
		d.failf(n, field, "%s is too short: at least %s", time.Duration(x), floor)
		return 0, false
	}
	return x, ok
}

func (d *decoder) boolean(n *yaml.Node, field string) (bool, bool) {
	if !d.usable(n, field) {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.failf(n, field, "must be true or false, got %s", describe(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.failf(n, field, "must be true or false, got %s", describe(n))
		return false, false
	}
	return b, true
}

func (d *decoder) integer(n *yaml.Node, field string, lo, hi int) (int, bool) {
	if !d.usable(n, field) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.failf(n, field, "must be an integer, got %s", describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < int64(lo) || v > int64(hi) {
		d.failf(n, field, "must be an integer from %d to %d, got %s", lo, hi, n.Value)
		return 0, false
	}
	return int(v), true
}

// duration parses "5s", "10m", "1h30m" and refuses values that are not
// positive.
func (d *decoder) duration(n *yaml.Node, field string) (Duration, bool) {
	s, ok := d.text(n, field)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		hint := ""
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			hint = fmt.Sprintf(" (add a unit, like %ss)", s)
		}
		d.failf(n, field, "invalid duration %q: want a Go duration like 30s, 5m or 1h30m%s", s, hint)
		return 0, false
	}
	if v <= 0 {
		d.failf(n, field, "duration must be positive, got %s", s)
		return 0, false
	}
	return Duration(v), true
}

func (d *decoder) stringList(n *yaml.Node, field string) ([]string, bool) {
	out := []string{}
	okAll := true
	ok := d.sequence(n, field, func(_ int, item *yaml.Node, f string) {
		s, ok := d.text(item, f)
		if !ok {
			okAll = false
			return
		}
		out = append(out, s)
	})
	return out, ok && okAll
}

// stringMap decodes a mapping of strings to strings (labels).
func (d *decoder) stringMap(n *yaml.Node, field string) (map[string]string, bool) {
	out := make(map[string]string, len(n.Content)/2)
	okAll := true
	ok := d.mapping(n, field, nil, func(key string, k, v *yaml.Node, f string) {
		if msg := checkLabelKey(key); msg != "" {
			d.failf(k, f, "%s", msg)
			okAll = false
			return
		}
		s, ok := d.scalarText(v, f)
		if !ok || !d.visible(v, f, key+": "+s) {
			okAll = false
			return
		}
		out[key] = s
	})
	return out, ok && okAll
}

func checkLabelKey(key string) string {
	if key == "" {
		return "label names must not be empty"
	}
	for _, r := range key {
		if r <= ' ' || r == 0x7f {
			return fmt.Sprintf("label name %q must not contain spaces or control characters", key)
		}
	}
	return ""
}

// content decodes inline file content: a string, or !!binary base64 for
// files that are not text.
func (d *decoder) content(n *yaml.Node, field string) ([]byte, bool) {
	if !d.usable(n, field) {
		return nil, false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!binary" {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			d.failf(n, field, "invalid !!binary content: %v", err)
			return nil, false
		}
		return b, true
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.failf(n, field, "must be a string (quote it, or use a | block), got %s", describe(n))
		return nil, false
	}
	return []byte(n.Value), true
}

// varsNode decodes template variables: any YAML value except aliases, with
// mappings kept as trees so that layers can merge them key by key.
func (d *decoder) varsNode(n *yaml.Node, field string, depth int) (*varNode, bool) {
	if !d.usable(n, field) {
		return nil, false
	}
	if depth > maxVarsDepth {
		d.failf(n, field, "nested deeper than %d levels", maxVarsDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		vn := &varNode{key: varKey(field), src: d.src(n), fields: make(map[string]*varNode, len(n.Content)/2)}
		ok := d.mapping(n, field, nil, func(key string, _, v *yaml.Node, f string) {
			if child, ok := d.varsNode(v, f, depth+1); ok {
				vn.fields[key] = child
			}
		})
		return vn, ok
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		okAll := true
		d.sequence(n, field, func(_ int, item *yaml.Node, f string) {
			child, ok := d.varsNode(item, f, depth+1)
			if !ok {
				okAll = false
				return
			}
			list = append(list, child.plain())
		})
		return &varNode{key: varKey(field), src: d.src(n), value: list, leaf: true}, okAll
	case yaml.ScalarNode:
		v, ok := d.scalarValue(n, field)
		return &varNode{key: varKey(field), src: d.src(n), value: v, leaf: true}, ok
	}
	d.failf(n, field, "unsupported YAML node %s", describe(n))
	return nil, false
}

const maxVarsDepth = 32

// varKey turns the field path of a value under spec.vars into its
// provenance key: "spec.vars.net.dns" -> "vars.net.dns".
func varKey(field string) string { return strings.TrimPrefix(field, "spec.") }

// scalarValue converts a scalar to the Go value a template sees.
func (d *decoder) scalarValue(n *yaml.Node, field string) (any, bool) {
	switch n.Tag {
	case "!!str", "!!timestamp":
		return n.Value, true
	case "!!null":
		return nil, true
	case "!!bool":
		return d.boolean(n, field)
	case "!!int":
		var v any
		if err := n.Decode(&v); err == nil {
			switch v.(type) {
			case int, int64, uint64:
				return v, true
			}
		}
		d.failf(n, field, "integer %s is out of range", n.Value)
		return nil, false
	case "!!float":
		var v float64
		if err := n.Decode(&v); err != nil {
			d.failf(n, field, "invalid number %s", n.Value)
			return nil, false
		}
		if math.IsInf(v, 0) || math.IsNaN(v) {
			d.failf(n, field, "%s is not supported in vars (quote it to use it as a string)", n.Value)
			return nil, false
		}
		return v, true
	case "!!binary":
		return n.Value, true
	}
	d.failf(n, field, "unsupported YAML tag %s", n.Tag)
	return nil, false
}
