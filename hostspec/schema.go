package hostspec

import (
	"time"

	"gopkg.in/yaml.v3"
)

// The schema of the fleet repository's documents is one table per YAML
// object: the keys the object may hold, in the order messages list them,
// each with the parser of its value. The allowed keys and the "did you
// mean" hints come from the tables; the walker that gives every problem its
// file:line:column is in yamlnode.go. By section:
//
//	schema_header.go     apiVersion and kind: which document a file holds
//	schema_documents.go  Fleet, Group and Host documents: metadata, selector, policy
//	schema_spec.go       spec: image and vars, and the lists etc and health
//	schema_etc.go        one etc entry and its onChange
//	schema_health.go     one health check, as written and as merged over the layers
//	schema_update.go     update: windows and fleetlock
//	lock.go              the Lock document (bootsync.lock)
//	limits.go            limits: (fleet.yaml)
//	schema_validators.go checks of single values (names, paths, references, …)

// fieldParser decodes the value v of one key, found at field path f, into
// the object being built.
type fieldParser[T any] func(d *decoder, v *yaml.Node, f string, out *T)

// field is one key of an object: the parser of its value and, for objects
// that layers merge key by key, how a higher layer's value replaces a lower
// one's (nil for keys that do not merge on their own).
type field[T any] struct {
	key   string
	parse fieldParser[T]
	merge func(lo, hi *T)
}

// object is the table of one YAML mapping.
type object[T any] struct {
	keys    []string // in the order messages list them
	parsers map[string]fieldParser[T]
	merges  []func(lo, hi *T)
}

func objectOf[T any](fields ...field[T]) *object[T] {
	o := &object[T]{keys: make([]string, len(fields)), parsers: make(map[string]fieldParser[T], len(fields))}
	for i, f := range fields {
		o.keys[i] = f.key
		o.parsers[f.key] = f.parse
		if f.merge != nil {
			o.merges = append(o.merges, f.merge)
		}
	}
	return o
}

// decode walks the mapping n (see decoder.mapping: unknown and duplicate
// keys are reported there) and parses each key into out. It returns false
// when n is not a usable mapping.
func (o *object[T]) decode(d *decoder, n *yaml.Node, path string, out *T) bool {
	return d.mapping(n, path, o.keys, func(key string, _, v *yaml.Node, f string) {
		o.parsers[key](d, v, f, out)
	})
}

// merge lays hi over lo key by key: every key hi sets replaces lo's.
func (o *object[T]) merge(lo, hi *T) {
	for _, m := range o.merges {
		m(lo, hi)
	}
}

// headerKey is apiVersion or kind: checked by decoder.header before the
// rest of a document is read.
func headerKey[T any](key string) field[T] {
	return field[T]{key: key, parse: func(*decoder, *yaml.Node, string, *T) {}}
}

// valueParser decodes one value, recording its problems.
type valueParser[V any] func(d *decoder, v *yaml.Node, f string) (V, bool)

// optKey is a key whose value is an optional value of out (picked by at),
// set together with the place that set it; a higher layer's value replaces
// a lower one's.
func optKey[T, V any](key string, at func(*T) *opt[V], parse valueParser[V]) field[T] {
	return field[T]{
		key: key,
		parse: func(d *decoder, v *yaml.Node, f string, out *T) {
			if x, ok := parse(d, v, f); ok {
				at(out).put(x, d.src(v))
			}
		},
		merge: func(lo, hi *T) { setIf(at(lo), *at(hi)) },
	}
}

func setIf[T any](dst *opt[T], src opt[T]) {
	if src.set {
		*dst = src
	}
}

// alone is f without its merge: the key merges together with others.
func alone[T any](f field[T]) field[T] {
	f.merge = nil
	return f
}

// checkedText parses a non-empty string that check accepts (check returns
// the problem, or "").
func checkedText(check func(string) string) valueParser[string] {
	return func(d *decoder, v *yaml.Node, f string) (string, bool) {
		s, ok := d.text(v, f)
		if !ok {
			return "", false
		}
		if msg := check(s); msg != "" {
			d.failf(v, f, "%s", msg)
			return "", false
		}
		return s, true
	}
}

// anyText accepts every non-empty string.
func anyText(string) string { return "" }

// durationOf parses a positive duration of at least floor (0: any).
func durationOf(floor time.Duration) valueParser[Duration] {
	return func(d *decoder, v *yaml.Node, f string) (Duration, bool) { return d.durationAtLeast(v, f, floor) }
}

// checkedList decodes a list of strings and reports each item that check
// refuses; ok is false when the list itself could not be read.
func (d *decoder) checkedList(v *yaml.Node, f string, check func(string) string) ([]string, bool) {
	list, ok := d.stringList(v, f)
	if !ok {
		return list, false
	}
	for i, s := range list {
		if msg := check(s); msg != "" {
			d.failf(v.Content[i], index(f, i), "%s", msg)
		}
	}
	return list, true
}
