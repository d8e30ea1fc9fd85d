package hostspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Strict decoding works on yaml.Node rather than on Go structs: that is what
// gives every problem a line and column, lets us report every unknown key
// and duplicate key (yaml.v3 stops at the first), and lets us keep the
// position of each value for provenance.

// opt is an optional value together with the place that set it.
type opt[T any] struct {
	v   T
	src Source
	set bool
}

func (o *opt[T]) put(v T, src Source) { o.v, o.src, o.set = v, src, true }

// decoder collects the problems of one file.
type decoder struct {
	file string
	kind string // the document's kind, once its header is read
	errs ErrorList
}

func (d *decoder) src(n *yaml.Node) Source {
	return Source{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) failf(n *yaml.Node, field, format string, args ...any) {
	e := &Error{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// parseDocument parses data as exactly one YAML document and returns its
// root node, or nil after recording why it could not.
func (d *decoder) parseDocument(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, &Error{File: d.file, Line: 1, Column: 1, Msg: "file is empty: expected a document with apiVersion and kind"})
			return nil
		}
		d.syntaxError(data, err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
		return nil
	default:
		d.errs = append(d.errs, &Error{File: d.file, Line: extra.Line, Column: extra.Column,
			Msg: "a second YAML document (after ---): each file must hold exactly one document"})
		return nil
	}
	if len(doc.Content) == 0 {
		d.failf(&doc, "", "document is empty: expected apiVersion and kind")
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		d.failf(root, "", "document is empty: expected apiVersion and kind")
		return nil
	}
	return root
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError records a YAML syntax error at the line yaml.v3 reports. It
// leaves the line out for problems on the first line, and for problems found
// while reading characters; those are located here.
func (d *decoder) syntaxError(data []byte, err error) {
	msg := err.Error()
	e := &Error{File: d.file, Line: 1}
	m := yamlLineRE.FindStringSubmatch(msg)
	if m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if isParserProblem(msg) {
		// yaml.v3 reports parser (as opposed to scanner) errors with the
		// 0-based line of the construct being parsed.
		if m != nil {
			e.Line++
		}
		e.Msg = "YAML syntax error in the block that starts here: " + msg
	} else {
		if m == nil {
			if line, col, ok := findBadCharacter(data); ok {
				e.Line, e.Column = line, col
			}
		}
		e.Msg = "YAML syntax error: " + msg
	}
	d.errs = append(d.errs, e)
}

// isParserProblem reports whether msg is one of libyaml's parser problems
// (see yaml.v3's parserc.go); every other syntax problem is the scanner's.
func isParserProblem(msg string) bool {
	switch msg {
	case "did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"did not find expected '-' indicator", "did not find expected <document start>",
		"did not find expected <stream-start>", "did not find expected key",
		"did not find expected node content", "found duplicate %TAG directive",
		"found duplicate %YAML directive", "found incompatible YAML document",
		"found undefined tag handle":
		return true
	}
	return false
}

// findBadCharacter locates the first character YAML does not allow in a
// document (control characters other than tab and line breaks, or invalid
// UTF-8), since yaml.v3 reports those without a position.
func findBadCharacter(data []byte) (line, col int, ok bool) {
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		bad := (r == utf8.RuneError && size == 1) ||
			(r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f ||
			(r >= 0x80 && r < 0xa0 && r != 0x85) || r == 0xfffe || r == 0xffff
		if bad {
			return line, col, true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return 0, 0, false
}

// join builds a field path: join("spec", "etc") is "spec.etc".
func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// describe names a node's YAML type for messages: `must be a string, got a sequence`.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!null":
		return "null (an empty value)"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!str":
		return "the string " + strconv.Quote(n.Value)
	}
	return n.Tag + " " + strconv.Quote(n.Value)
}

// usable refuses aliases. Anchors and aliases are not supported: they would
// blur which line set a value, and expanding them is a denial-of-service
// vector ("billion laughs").
func (d *decoder) usable(n *yaml.Node, field string) bool {
	if n.Kind == yaml.AliasNode {
		d.failf(n, field, "YAML aliases (*%s) are not supported: write the value out", n.Value)
		return false
	}
	return true
}

// mapping calls fn for each key of the mapping n in document order. It
// reports a node that is not a mapping, non-string keys, duplicate keys and,
// when known is not nil, keys not in known (with a suggestion for typos).
func (d *decoder) mapping(n *yaml.Node, field string, known []string, fn func(key string, k, v *yaml.Node, f string)) bool {
	if !d.usable(n, field) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.failf(n, field, "must be a mapping, got %s", describe(n))
		return false
	}
	var seen map[string]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Tag == "!!merge" {
			if k.Tag == "!!merge" {
				d.failf(k, field, "YAML merge keys (<<) are not supported: write the keys out")
			} else {
				d.failf(k, field, "keys must be strings, got %s", describe(k))
			}
			continue
		}
		key := k.Value
		f := join(field, key)
		if prev := findKey(n, i, key, &seen); prev != nil {
			d.failf(k, f, "duplicate key %q (first set at line %d)", key, prev.Line)
			continue
		}
		if known != nil && !slices.Contains(known, key) {
			msg := fmt.Sprintf("unknown field %q", key)
			if s := suggest(key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known fields: " + strings.Join(known, ", ") + ")"
			}
			d.failf(k, f, "%s", msg)
			continue
		}
		fn(key, k, v, f)
	}
	return true
}

// findKey returns the earlier key node named key in the first i entries of
// mapping n. Small mappings are scanned; large ones get an index.
func findKey(n *yaml.Node, i int, key string, seen *map[string]*yaml.Node) *yaml.Node {
	if len(n.Content) <= 32 {
		for j := 0; j < i; j += 2 {
			if k := n.Content[j]; k.Kind == yaml.ScalarNode && k.Value == key {
				return k
			}
		}
		return nil
	}
	if *seen == nil {
		*seen = make(map[string]*yaml.Node, len(n.Content)/2)
	}
	if prev, ok := (*seen)[key]; ok {
		return prev
	}
	(*seen)[key] = n.Content[i]
	return nil
}

// suggest returns the known name closest to key when it is a likely typo.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist > len(key)/2 {
		return ""
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance with adjacent
// transpositions (so "mdoe" is one step from "mode").
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// sequence calls fn for each item of the list n.
func (d *decoder) sequence(n *yaml.Node, field string, fn func(i int, item *yaml.Node, f string)) bool {
	if !d.usable(n, field) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.failf(n, field, "must be a list, got %s", describe(n))
		return false
	}
	for i, item := range n.Content {
		if d.usable(item, index(field, i)) {
			fn(i, item, index(field, i))
		}
	}
	return true
}
