package hostspec

import "maps"

// varNode is one value of `vars:` with the place that set it. Mappings stay
// trees so layers merge them key by key; everything else is a leaf that a
// higher layer replaces whole. Nodes are never changed after Load, so
// merged trees share unchanged subtrees with the layers.
type varNode struct {
	key    string // provenance key: "vars.net.dns"
	src    Source
	fields map[string]*varNode // set for mappings
	value  any                 // set for leaves: a scalar or a list of plain values
	leaf   bool
}

// mergeVars returns hi laid over lo: mappings merge key by key,
// recursively; anything else in hi replaces what lo had.
func mergeVars(lo, hi *varNode) *varNode {
	switch {
	case hi == nil:
		return lo
	case lo == nil || lo.leaf || hi.leaf:
		return hi
	}
	out := &varNode{key: hi.key, src: hi.src, fields: maps.Clone(lo.fields)}
	if out.fields == nil {
		out.fields = make(map[string]*varNode, len(hi.fields))
	}
	for k, v := range hi.fields {
		out.fields[k] = mergeVars(lo.fields[k], v)
	}
	return out
}

// plain converts the tree to the values templates and JSON see, copying
// so that no two HostSpecs share a mutable map or slice.
func (n *varNode) plain() any {
	if n.leaf {
		return plainCopy(n.value)
	}
	out := make(map[string]any, len(n.fields))
	for k, v := range n.fields {
		out[k] = v.plain()
	}
	return out
}

func plainCopy(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plainCopy(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = plainCopy(x)
		}
		return out
	}
	return v
}

// flattenVars returns the plain value of hi laid over lo (as mergeVars
// would build it) and records the provenance of every value, without
// building the merged tree: this runs once per host. When loRecorded, prov
// already holds lo's provenance (a baseline's): only what hi changes is
// recorded.
func flattenVars(lo, hi *varNode, prov map[string]Source, loRecorded bool) map[string]any {
	switch {
	case hi == nil && lo == nil:
		return map[string]any{}
	case hi == nil && loRecorded:
		return lo.plain().(map[string]any)
	case hi == nil:
		return lo.plainProv(prov).(map[string]any)
	case lo == nil:
		return hi.plainProv(prov).(map[string]any)
	case !loRecorded:
		return flattenMerge(lo, hi, prov).(map[string]any)
	case lo.leaf || hi.leaf:
		lo.forget(prov)
		return hi.plainProv(prov).(map[string]any)
	}
	// Both are mappings (vars: always is): keep lo's keys hi does not
	// set, and record hi's afresh where it does.
	out := make(map[string]any, len(lo.fields)+len(hi.fields))
	for k, v := range lo.fields {
		if _, over := hi.fields[k]; !over {
			out[k] = v.plain()
		}
	}
	for k, v := range hi.fields {
		if old := lo.fields[k]; old != nil {
			old.forget(prov)
		}
		out[k] = flattenMerge(lo.fields[k], v, prov)
	}
	return out
}

// recordProv records the provenance of n and everything under it, as
// plainProv does.
func (n *varNode) recordProv(prov map[string]Source) {
	if n.key != "vars" {
		prov[n.key] = n.src
	}
	for _, v := range n.fields {
		v.recordProv(prov)
	}
}

// size is the number of nodes under n.
func (n *varNode) size() int {
	s := len(n.fields)
	for _, v := range n.fields {
		s += v.size()
	}
	return s
}

// forget deletes the provenance of n and everything under it.
func (n *varNode) forget(prov map[string]Source) {
	delete(prov, n.key)
	for _, v := range n.fields {
		v.forget(prov)
	}
}

func flattenMerge(lo, hi *varNode, prov map[string]Source) any {
	if lo == nil || lo.leaf || hi.leaf {
		return hi.plainProv(prov)
	}
	out := make(map[string]any, len(lo.fields)+len(hi.fields))
	for k, v := range lo.fields {
		if _, over := hi.fields[k]; !over {
			out[k] = v.plainProv(prov)
		}
	}
	for k, v := range hi.fields {
		out[k] = flattenMerge(lo.fields[k], v, prov)
	}
	if hi.key != "vars" {
		prov[hi.key] = hi.src
	}
	return out
}

// plainProv is plain that also records provenance.
func (n *varNode) plainProv(prov map[string]Source) any {
	if n.key != "vars" {
		prov[n.key] = n.src
	}
	if n.leaf {
		return plainCopy(n.value)
	}
	out := make(map[string]any, len(n.fields))
	for k, v := range n.fields {
		out[k] = v.plainProv(prov)
	}
	return out
}
