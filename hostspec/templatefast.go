package hostspec

import (
	"context"
	"fmt"
	"strconv"
	"text/template"
	"text/template/parse"
)

// Fast rendering.
//
// text/template evaluates every field and variable through reflection,
// which is most of the cost of resolving a host. Most templates use a
// small subset: text, {{.Host…}}, {{.Vars…}}, {{$var…}}, {{.}}, if/else
// on such a value and range over a list. Those are compiled into a
// fastNode tree at parse time and run without reflection. Anything else,
// at compile time or when running (a missing key, a value of another type,
// output over the size limit, a budget exceeded), falls back to
// text/template from the start, which then renders or fails exactly as it
// always does: the fast path only ever produces output text/template
// would have produced, and never produces an error of its own.

// fastTemplates can be turned off by tests, to compare the fast path with
// text/template.
var fastTemplates = true

type fastKind uint8

const (
	fastText fastKind = iota
	fastPrint
	fastIf
	fastRange
)

// fastNode is one node of a compiled template.
type fastNode struct {
	kind     fastKind
	text     []byte  // fastText
	arg      fastArg // fastPrint, fastIf, fastRange
	list     []fastNode
	elseList []fastNode
	// For fastRange: the variables it declares (elem, index; "" when
	// absent) and, in a budgeted template, the steps it charges per
	// element (the cost instrument gave its rangeFunc command).
	elemVar, indexVar string
	cost              int64
}

// fastArg is the value of a pipeline of one command with one operand:
// dot, a variable or dot's field chain (.Vars.net.dns).
type fastArg struct {
	dot      bool     // . or a field chain from it
	variable string   // $x or a field chain from it
	chain    []string // field names
}

// compileFast compiles t, or returns nil when it uses anything outside
// the subset. budgeted says whether instrument added its range commands.
func compileFast(t *template.Template, budgeted bool) []fastNode {
	if len(t.Templates()) > 1 || t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	c := &fastCompiler{budgeted: budgeted}
	nodes := c.list(t.Tree.Root)
	if c.failed {
		return nil
	}
	return nodes
}

type fastCompiler struct {
	budgeted bool
	failed   bool
}

func (c *fastCompiler) list(l *parse.ListNode) []fastNode {
	if l == nil {
		return nil
	}
	out := make([]fastNode, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			out = append(out, fastNode{kind: fastText, text: n.Text})
		case *parse.CommentNode:
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 {
				c.failed = true
				return nil
			}
			out = append(out, fastNode{kind: fastPrint, arg: c.arg(n.Pipe.Cmds)})
		case *parse.IfNode:
			if len(n.Pipe.Decl) > 0 {
				c.failed = true
				return nil
			}
			out = append(out, fastNode{kind: fastIf, arg: c.arg(n.Pipe.Cmds), list: c.list(n.List), elseList: c.list(n.ElseList)})
		case *parse.RangeNode:
			out = append(out, c.rangeNode(n))
		default: // with, template, break, continue and anything newer
			c.failed = true
		}
		if c.failed {
			return nil
		}
	}
	return out
}

func (c *fastCompiler) rangeNode(n *parse.RangeNode) fastNode {
	cmds := n.Pipe.Cmds
	f := fastNode{kind: fastRange}
	if c.budgeted {
		// The last command is instrument's `rangeFunc cost`.
		last := cmds[len(cmds)-1]
		id, ok := last.Args[0].(*parse.IdentifierNode)
		if !ok || id.Ident != rangeFunc || len(last.Args) != 2 {
			c.failed = true
			return f
		}
		f.cost = last.Args[1].(*parse.NumberNode).Int64
		cmds = cmds[:len(cmds)-1]
	}
	switch d := n.Pipe.Decl; {
	case n.Pipe.IsAssign || len(d) > 2:
		c.failed = true
		return f
	case len(d) == 2:
		f.indexVar, f.elemVar = d[0].Ident[0], d[1].Ident[0]
	case len(d) == 1:
		f.elemVar = d[0].Ident[0]
	}
	f.arg = c.arg(cmds)
	f.list, f.elseList = c.list(n.List), c.list(n.ElseList)
	return f
}

// arg compiles a pipeline of one command with one operand.
func (c *fastCompiler) arg(cmds []*parse.CommandNode) fastArg {
	if len(cmds) != 1 || len(cmds[0].Args) != 1 {
		c.failed = true
		return fastArg{}
	}
	switch n := cmds[0].Args[0].(type) {
	case *parse.DotNode:
		return fastArg{dot: true}
	case *parse.FieldNode:
		return fastArg{dot: true, chain: n.Ident}
	case *parse.VariableNode:
		return fastArg{variable: n.Ident[0], chain: n.Ident[1:]}
	}
	c.failed = true
	return fastArg{}
}

// fastRun is one run of a compiled template.
type fastRun struct {
	w     *limitedWriter
	ctx   context.Context
	root  fastVal   // the data: $
	vars  []fastVar // declared by ranges, innermost last
	steps int64
	limit int64 // steps allowed; < 0: not budgeted
	num   [24]byte
}

type fastVar struct {
	name string
	val  fastVal
}

// fastVal is a value a template sees. Strings and ints are kept out of v
// so that reading a field or label does not allocate.
type fastVal struct {
	kind fastValKind
	s    string
	i    int
	v    any
}

type fastValKind uint8

const (
	valAny fastValKind = iota
	valString
	valInt
	valHost // v is *templateHost: .Host
)

// runFast renders nodes for data into w and returns the steps a budgeted
// render charged, or ok false when text/template must render instead.
func runFast(nodes []fastNode, w *limitedWriter, data *templateData, budgeted bool) (steps int64, ok bool) {
	r := fastRun{w: w, ctx: data.ctx, limit: -1}
	if budgeted {
		r.limit = data.limits.TemplateSteps
	}
	r.root = fastVal{v: data}
	if !r.list(nodes, r.root) {
		return 0, false
	}
	if budgeted && r.ctx != nil && r.ctx.Err() != nil {
		return 0, false // text/template reports the render as stopped
	}
	return r.steps, true
}

func (r *fastRun) list(nodes []fastNode, dot fastVal) bool {
	for i := range nodes {
		n := &nodes[i]
		switch n.kind {
		case fastText:
			if _, err := r.w.Write(n.text); err != nil {
				return false
			}
		case fastPrint:
			v, ok := r.eval(&n.arg, dot)
			if !ok || !r.print(v) {
				return false
			}
		case fastIf:
			v, ok := r.eval(&n.arg, dot)
			if !ok {
				return false
			}
			truth, ok := v.truth()
			if !ok {
				return false
			}
			branch := n.elseList
			if truth {
				branch = n.list
			}
			if !r.list(branch, dot) {
				return false
			}
		case fastRange:
			if !r.rangeOver(n, dot) {
				return false
			}
		}
	}
	return true
}

// rangeOver runs a range over a list, charging its steps as rangeFunc
// would.
func (r *fastRun) rangeOver(n *fastNode, dot fastVal) bool {
	v, ok := r.eval(&n.arg, dot)
	if !ok || v.kind != valAny {
		return false
	}
	elems, ok := v.v.([]any)
	if !ok || len(elems) > longRange {
		return false
	}
	if r.limit >= 0 {
		r.steps += int64(len(elems))*n.cost + 1
		if r.steps > r.limit || (r.ctx != nil && r.ctx.Err() != nil) {
			return false
		}
	}
	if len(elems) == 0 {
		return r.list(n.elseList, dot)
	}
	mark := len(r.vars)
	if n.indexVar != "" {
		r.vars = append(r.vars, fastVar{name: n.indexVar})
	}
	if n.elemVar != "" {
		r.vars = append(r.vars, fastVar{name: n.elemVar})
	}
	for i, e := range elems {
		if n.indexVar != "" {
			r.vars[mark].val = fastVal{kind: valInt, i: i}
		}
		elem := fastVal{v: e}
		if n.elemVar != "" {
			r.vars[len(r.vars)-1].val = elem
		}
		if !r.list(n.list, elem) {
			return false
		}
	}
	r.vars = r.vars[:mark]
	return true
}

// eval evaluates an operand as text/template would, for the types this
// path knows; ok is false for anything else.
func (r *fastRun) eval(a *fastArg, dot fastVal) (fastVal, bool) {
	v := dot
	if a.variable == "$" {
		v = r.root
	} else if !a.dot {
		found := false
		for i := len(r.vars) - 1; i >= 0; i-- {
			if r.vars[i].name == a.variable {
				v, found = r.vars[i].val, true
				break
			}
		}
		if !found {
			return fastVal{}, false
		}
	}
	if _, root := v.v.(*templateData); root && len(a.chain) == 0 {
		return fastVal{}, false // the whole data
	}
	for _, name := range a.chain {
		var ok bool
		if v, ok = v.field(name); !ok {
			return fastVal{}, false
		}
	}
	return v, true
}

// field is v.name: a field of the data or of .Host, or a key of a map
// (missing keys are errors: templates run with missingkey=error).
func (v fastVal) field(name string) (fastVal, bool) {
	if v.kind == valHost {
		h := v.v.(*templateHost)
		switch name {
		case "Name":
			return fastVal{kind: valString, s: h.Name}, true
		case "Labels":
			return fastVal{v: h.Labels}, true
		case "Bucket":
			return fastVal{kind: valInt, i: h.Bucket}, true
		}
		return fastVal{}, false
	}
	if v.kind != valAny {
		return fastVal{}, false
	}
	switch x := v.v.(type) {
	case *templateData:
		switch name {
		case "Host":
			return fastVal{kind: valHost, v: &x.Host}, true
		case "Vars":
			return fastVal{v: x.Vars}, true
		case "Secrets":
			return fastVal{v: x.Secrets}, true
		}
	case map[string]any:
		e, ok := x[name]
		return fastVal{v: e}, ok
	case map[string]string:
		e, ok := x[name]
		return fastVal{kind: valString, s: e}, ok
	}
	return fastVal{}, false
}

// print writes v as text/template does: fmt.Fprint of the value, for the
// values of vars and labels. Others (nil, which it prints as "<no value>",
// pointers, which it dereferences, and the rest) are left to it.
func (r *fastRun) print(v fastVal) bool {
	var err error
	switch v.kind {
	case valString:
		_, err = r.w.WriteString(v.s)
	case valInt:
		_, err = r.w.Write(strconv.AppendInt(r.num[:0], int64(v.i), 10))
	case valAny:
		switch x := v.v.(type) {
		case string:
			_, err = r.w.WriteString(x)
		case int:
			_, err = r.w.Write(strconv.AppendInt(r.num[:0], int64(x), 10))
		case bool, int64, uint64, float64, []any, map[string]any, map[string]string:
			_, err = fmt.Fprint(r.w, x)
		default:
			return false
		}
	default:
		return false
	}
	return err == nil
}

// truth is text/template's truth of a value, for the types this path
// knows.
func (v fastVal) truth() (truth, ok bool) {
	switch v.kind {
	case valString:
		return v.s != "", true
	case valInt:
		return v.i != 0, true
	case valHost:
		return true, true // a struct
	}
	switch x := v.v.(type) {
	case nil:
		return false, true
	case bool:
		return x, true
	case string:
		return x != "", true
	case int:
		return x != 0, true
	case int64:
		return x != 0, true
	case uint64:
		return x != 0, true
	case float64:
		return x != 0, true
	case []any:
		return len(x) > 0, true
	case map[string]any:
		return len(x) > 0, true
	case map[string]string:
		return len(x) > 0, true
	}
	return false, false
}
