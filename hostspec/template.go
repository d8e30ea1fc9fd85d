package hostspec

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"text/template/parse"

	"gopkg.in/yaml.v3"
)

// tmpl is a parsed template and where its text came from, so that errors
// point into the right file.
type tmpl struct {
	t *template.Template
	// file is the repository file errors name: the `from:` file, or the
	// YAML file holding inline content.
	file string
	// For inline content: the YAML node, to map template lines onto the
	// YAML file's lines.
	inline *yaml.Node
	deps   templateDeps
	// exec runs the template within a budget; nil for templates that
	// cannot loop or build strings (see instrument).
	exec *execPool
	// fast is the template compiled for fast rendering; nil when it uses
	// more than that supports.
	fast []fastNode
	// sizeHint is the size of the last rendered output.
	sizeHint atomic.Int64
}

// templateData is what templates see: .Host.Name, .Host.Labels,
// .Host.Bucket and .Vars.
type templateData struct {
	Host templateHost
	Vars map[string]any
	// Secrets is the decrypted SOPS document of a secret entry's template
	// (placeholders outside the host); nil elsewhere.
	Secrets any

	// Not visible to templates (unexported): what bounds the render.
	ctx    context.Context
	limits *effectiveLimits
}

type templateHost struct {
	Name   string
	Labels map[string]string
	Bucket int
}

// inlineTemplateName names templates written inline in YAML; errors are
// rewritten to point into the YAML file.
const inlineTemplateName = "inline"

var templateRefRE = regexp.MustCompile(inlineTemplateName + `:\d+(:\d+)?`)

// parseTemplate parses text once; templates are shared by every host.
func parseTemplate(name, file string, inline *yaml.Node, text []byte) (*tmpl, *Error) {
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, templateError(name, file, inline, err)
	}
	tm := &tmpl{t: t, file: file, inline: inline, deps: analyzeTemplate(t)}
	if instrument(t) {
		tm.exec = &execPool{base: t}
	}
	tm.fast = compileFast(t, tm.exec != nil)
	return tm, nil
}

// render executes the template for one host, within data.limits; the
// rendered output is at most limits.FileSize (a runaway template fails
// clearly instead of exhausting memory).
func (t *tmpl) render(data *templateData) ([]byte, *Error) {
	// Size the buffer from the last output so that rendering allocates once.
	w := &limitedWriter{buf: make([]byte, 0, t.sizeHint.Load()+64), left: int(data.limits.FileSize)}
	if t.fast != nil && fastTemplates {
		if steps, ok := runFast(t.fast, w, data, t.exec != nil); ok {
			if t.exec != nil && observeBudget != nil {
				observeBudget(steps, 0)
			}
			t.sizeHint.Store(int64(min(len(w.buf), 1<<20)))
			return w.buf, nil
		}
		// text/template renders it again from the start.
		w.buf, w.left = w.buf[:0], int(data.limits.FileSize)
	}
	var err error
	if t.exec != nil {
		err = t.exec.execute(data.ctx, w, data, data.limits)
	} else {
		err = t.t.Execute(w, data)
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, &Error{File: t.file, Limit: "fileSize", Msg: "rendered template is larger than " + data.limits.explain("fileSize")}
		}
		return nil, budgetProblem(templateError(t.t.Name(), t.file, t.inline, err), err, data.limits)
	}
	t.sizeHint.Store(int64(min(len(w.buf), 1<<20)))
	return w.buf, nil
}

var errTooLarge = errors.New("rendered template too large")

// limitedWriter collects rendered output, at most left more bytes.
type limitedWriter struct {
	buf  []byte
	left int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		return 0, errTooLarge
	}
	l.left -= len(p)
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *limitedWriter) WriteString(s string) (int, error) {
	if len(s) > l.left {
		return 0, errTooLarge
	}
	l.left -= len(s)
	l.buf = append(l.buf, s...)
	return len(s), nil
}

// templateError turns a text/template error ("template: NAME:LINE:COL:
// executing \"NAME\" at <.Vars.x>: map has no entry for key \"x\"") into an
// Error at that line of the template's source file.
func templateError(name, file string, inline *yaml.Node, err error) *Error {
	msg := err.Error()
	e := &Error{File: file}
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if ok {
		// LINE: or LINE:COL:
		var nums []int
		for len(nums) < 2 {
			i := strings.IndexByte(rest, ':')
			if i <= 0 {
				break
			}
			n, convErr := strconv.Atoi(rest[:i])
			if convErr != nil {
				break
			}
			nums = append(nums, n)
			rest = rest[i+1:]
		}
		if len(nums) > 0 {
			e.Line = nums[0]
			if len(nums) > 1 {
				e.Column = nums[1] + 1 // text/template counts bytes from 0
			}
			msg = strings.TrimSpace(rest)
		}
		msg = strings.TrimPrefix(msg, "executing "+strconv.Quote(name)+" ")
	}
	if inline != nil {
		// "unclosed action started at inline:2": say where in the YAML file.
		msg = templateRefRE.ReplaceAllStringFunc(msg, func(ref string) string {
			var line int
			if _, err := fmt.Sscanf(ref, inlineTemplateName+":%d", &line); err != nil {
				return ref
			}
			l, _ := inlineLine(inline, line, 0)
			return "line " + strconv.Itoa(l)
		})
	}
	e.Msg = "template: " + msg
	if inline != nil {
		e.Line, e.Column = inlineLine(inline, e.Line, e.Column)
	}
	return e
}

// inlineLine maps a line (and column) of inline template text to the YAML
// file. Block scalars (| and >) start on the line after the key; other
// scalars start at the node.
func inlineLine(n *yaml.Node, line, col int) (int, int) {
	if line <= 0 {
		return n.Line, n.Column
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + line, 0
	}
	if line == 1 && col > 0 {
		offset := 0
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			offset = 1
		}
		return n.Line, n.Column + offset + col - 1
	}
	return n.Line + line - 1, 0
}

// templateDeps says what a template's output can depend on. Many /etc
// templates only read variables set by the fleet or a group (a resolver or
// NTP configuration): their output is the same for every host that shares
// the groups and does not set those variables itself, so it is rendered
// once per group set instead of once per host.
type templateDeps struct {
	// cacheable is false when the output may depend on the host (.Host,
	// the whole data, nested template calls): render per host.
	cacheable bool
	allVars   bool            // reads .Vars as a whole
	vars      map[string]bool // top-level keys of .Vars it reads
}

// analyzeTemplate inspects the parse tree. It is conservative: anything it
// does not understand makes the template per-host.
func analyzeTemplate(t *template.Template) templateDeps {
	a := &depAnalyzer{deps: templateDeps{cacheable: true, vars: map[string]bool{}}}
	if len(t.Templates()) > 1 || t.Tree == nil {
		return templateDeps{} // {{define}}/{{block}}: dot can be anything
	}
	a.walk(t.Tree.Root, true)
	return a.deps
}

type depAnalyzer struct {
	deps templateDeps
}

func (a *depAnalyzer) opaque() { a.deps.cacheable = false }

// walk visits a node; dotIsRoot says whether dot is still the template's
// data there (range and with rebind it to a value derived from their
// pipeline, which is analyzed itself; their else branches keep the outer
// dot).
func (a *depAnalyzer) walk(n parse.Node, dotIsRoot bool) {
	switch n := n.(type) {
	case nil:
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			a.walk(c, dotIsRoot)
		}
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode:
	case *parse.ActionNode:
		a.pipe(n.Pipe, dotIsRoot)
	case *parse.IfNode:
		a.pipe(n.Pipe, dotIsRoot)
		a.walk(n.List, dotIsRoot)
		a.walk(n.ElseList, dotIsRoot)
	case *parse.RangeNode:
		a.pipe(n.Pipe, dotIsRoot)
		a.walk(n.List, false)
		a.walk(n.ElseList, dotIsRoot)
	case *parse.WithNode:
		a.pipe(n.Pipe, dotIsRoot)
		a.walk(n.List, false)
		a.walk(n.ElseList, dotIsRoot)
	default: // {{template}} and anything newer
		a.opaque()
	}
}

func (a *depAnalyzer) pipe(p *parse.PipeNode, dotIsRoot bool) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		for _, arg := range c.Args {
			a.arg(arg, dotIsRoot)
		}
	}
}

func (a *depAnalyzer) arg(n parse.Node, dotIsRoot bool) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if dotIsRoot {
			a.root(n.Ident)
		}
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			a.root(n.Ident[1:])
		}
		// Other variables hold values of pipelines analyzed where they are
		// declared.
	case *parse.DotNode:
		if dotIsRoot {
			a.opaque()
		}
	case *parse.ChainNode:
		a.arg(n.Node, dotIsRoot)
	case *parse.PipeNode:
		a.pipe(n, dotIsRoot)
	case *parse.IdentifierNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
	default:
		a.opaque()
	}
}

// root records a field chain read from the template's data.
func (a *depAnalyzer) root(ident []string) {
	switch {
	case len(ident) == 0:
		a.opaque() // $ alone: the whole data
	case ident[0] == "Vars" && len(ident) == 1:
		a.deps.allVars = true
	case ident[0] == "Vars":
		a.deps.vars[ident[1]] = true
	default: // .Host, or a field that does not exist (an error per host)
		a.opaque()
	}
}

// sharedWith reports whether the template renders the same for a host
// whose own vars are hostVars as for the shared base: true when the host
// sets none of the variables the template reads.
func (d *templateDeps) sharedWith(hostVars *varNode) bool {
	if !d.cacheable {
		return false
	}
	if hostVars == nil {
		return true
	}
	if d.allVars || hostVars.leaf {
		return false
	}
	for k := range d.vars {
		if _, ok := hostVars.fields[k]; ok {
			return false
		}
	}
	return true
}

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
