package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The job edits the group's file in place: only the value it changes (or
// the line it adds) differs, so the commit's diff shows exactly the
// decision and the file keeps its comments and layout. A layout the edit
// cannot handle (flow mappings, block scalars) is rewritten by yaml.v3.

// setBucket sets selector.bucket of a group document to value.
func setBucket(data []byte, value string) ([]byte, error) {
	root, err := parseDoc(data)
	if err != nil {
		return nil, err
	}
	n := find(root, "selector", "bucket")
	if n == nil {
		return nil, errors.New("the group has no selector.bucket")
	}
	if out, ok := replaceScalar(data, n, quote(value)); ok {
		return out, nil
	}
	n.Value, n.Style, n.Tag = value, yaml.DoubleQuotedStyle, "!!str"
	return encode(root)
}

// setPaused sets spec.update.paused: true in a group document.
func setPaused(data []byte) ([]byte, error) {
	root, err := parseDoc(data)
	if err != nil {
		return nil, err
	}
	if n := find(root, "spec", "update", "paused"); n != nil {
		if out, ok := replaceScalar(data, n, "true"); ok {
			return out, nil
		}
		n.Value, n.Tag, n.Style = "true", "!!bool", 0
		return encode(root)
	}
	spec := find(root, "spec")
	if spec != nil && spec.Kind == yaml.MappingNode && spec.Style&yaml.FlowStyle == 0 && len(spec.Content) > 0 {
		if upd := find(spec, "update"); upd != nil {
			if upd.Kind == yaml.MappingNode && upd.Style&yaml.FlowStyle == 0 && len(upd.Content) > 0 {
				return insertLine(data, upd.Content[0], "paused: true"), nil
			}
		} else {
			first := spec.Content[0]
			return insertLine(data, first, "update:\n"+strings.Repeat(" ", first.Column-1+2)+"paused: true"), nil
		}
	}
	// Anything else: edit the tree and let yaml.v3 write it.
	if spec == nil {
		spec = &yaml.Node{Kind: yaml.MappingNode}
		mapping(root).Content = append(mapping(root).Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "spec"}, spec)
	}
	upd := find(spec, "update")
	if upd == nil || upd.Kind != yaml.MappingNode {
		upd = &yaml.Node{Kind: yaml.MappingNode}
		setKey(spec, "update", upd)
	}
	setKey(upd, "paused", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	return encode(root)
}

func parseDoc(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	return &doc, nil
}

func mapping(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		return n.Content[0]
	}
	return n
}

// find follows keys through nested mappings.
func find(n *yaml.Node, keys ...string) *yaml.Node {
	n = mapping(n)
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}

func encode(root *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("write YAML: %w", err)
	}
	return b.Bytes(), enc.Close()
}

func quote(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }

// offset is the byte offset of a node's 1-based line and (character) column.
func offset(data []byte, line, col int) (int, bool) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	for c := 1; c < col; c++ {
		if off >= len(data) || data[off] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	return off, true
}

// replaceScalar replaces a one-line scalar's text with value.
func replaceScalar(data []byte, n *yaml.Node, value string) ([]byte, bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	start, ok := offset(data, n.Line, n.Column)
	if !ok {
		return nil, false
	}
	end := scalarEnd(data, start, n)
	if end < 0 {
		return nil, false
	}
	out := append(append(append([]byte{}, data[:start]...), value...), data[end:]...)
	return out, true
}

// scalarEnd finds where the scalar starting at start ends on its line, or
// -1 when it is not a one-line scalar as expected.
func scalarEnd(data []byte, start int, n *yaml.Node) int {
	eol := bytes.IndexByte(data[start:], '\n')
	if eol < 0 {
		eol = len(data) - start
	}
	line := data[start : start+eol]
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0 && len(line) > 0 && line[0] == '"':
		for i := 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return start + i + 1
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0 && len(line) > 0 && line[0] == '\'':
		for i := 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return start + i + 1
			}
		}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0:
		if bytes.HasPrefix(line, []byte(n.Value)) {
			return start + len(n.Value)
		}
	}
	return -1
}

// insertLine inserts text as new lines right before the line of node at,
// indented as at is.
func insertLine(data []byte, at *yaml.Node, text string) []byte {
	lineStart, _ := offset(data, at.Line, 1)
	indent := strings.Repeat(" ", at.Column-1)
	ins := indent + text + "\n"
	return append(append(append([]byte{}, data[:lineStart]...), ins...), data[lineStart:]...)
}
