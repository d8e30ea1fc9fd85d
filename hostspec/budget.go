package hostspec

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// Template budgets.
//
// text/template cannot be interrupted from outside, and a loop that calls
// nothing ({{range 1000000000}}{{end}}) offers no hook to stop it. So every
// parsed template that can loop is instrumented: a call to stepFunc is put
// at the start of each range body (and of each template when {{template}}
// can recurse), charging the size of that body. The template cannot call
// or skip stepFunc itself (it is not in the parse-time function map). The
// functions that build strings (printf, print, println, html, js,
// urlquery) are replaced by versions that check, before building, that the
// result fits the render's memory budget, and charge what they produce.
// Steps and bytes are counted, not timed: the same template passes or fails
// the same way in CI and on every host. Cancelling the context (SIGTERM)
// also ends a render at its next step.
//
// Functions are resolved at execution time from the template's function
// map, so each concurrent render needs its own budget bound into its own
// copy of the map: tmpl keeps a pool of clones (Clone shares the parse
// trees) with their budgets.

// stepFunc is the function instrumented templates call; users cannot name
// it (it does not exist when their text is parsed).
const stepFunc = "bootsync_budget_step"

// budgetFuncs are the builtins replaced by budgeted versions.
var budgetFuncs = map[string]bool{"printf": true, "print": true, "println": true, "html": true, "js": true, "urlquery": true}

// budget is the allowance of one render.
type budget struct {
	ctx       context.Context
	steps     int64
	stepLimit int64
	mem       int64
	memLimit  int64
}

// budgetError is a render that went over its budget.
type budgetError struct {
	limit string // templateSteps or templateMemory
	msg   string
}

func (e *budgetError) Error() string { return e.msg }

func (b *budget) step(cost int) (string, error) {
	b.steps += int64(cost)
	if b.steps > b.stepLimit {
		return "", &budgetError{limit: "templateSteps", msg: fmt.Sprintf("the template runs longer than its budget of %d steps", b.stepLimit)}
	}
	if err := b.ctx.Err(); err != nil {
		return "", fmt.Errorf("rendering stopped: %w", err)
	}
	return "", nil
}

// reserve checks that up to n more bytes fit the memory budget.
func (b *budget) reserve(fn string, n int64) error {
	if b.mem+n > b.memLimit || n < 0 {
		return &budgetError{limit: "templateMemory", msg: fmt.Sprintf("%s could produce up to %s, more than is left of the template's memory budget of %s", fn, boundedread.FormatSize(max(n, 0)), boundedread.FormatSize(b.memLimit))}
	}
	return nil
}

// charge counts a function's result against the memory budget.
func (b *budget) charge(fn string, s string) (string, error) {
	b.mem += int64(len(s))
	if b.mem > b.memLimit {
		return "", &budgetError{limit: "templateMemory", msg: fmt.Sprintf("%s: the template's functions produced more than its memory budget of %s", fn, boundedread.FormatSize(b.memLimit))}
	}
	return s, nil
}

func (b *budget) funcs() template.FuncMap {
	escaper := func(name string, factor int64, esc func(...any) string) func(...any) (string, error) {
		return func(args ...any) (string, error) {
			if err := b.reserve(name, factor*argsSize(args)); err != nil {
				return "", err
			}
			return b.charge(name, esc(args...))
		}
	}
	return template.FuncMap{
		stepFunc: b.step,
		"printf": func(format string, args ...any) (string, error) {
			if err := b.reserve("printf", printfBound(format, args)); err != nil {
				return "", err
			}
			return b.charge("printf", fmt.Sprintf(format, args...))
		},
		"print":    escaper("print", 1, fmt.Sprint),
		"println":  escaper("println", 1, fmt.Sprintln),
		"html":     escaper("html", 6, template.HTMLEscaper),
		"js":       escaper("js", 6, template.JSEscaper),
		"urlquery": escaper("urlquery", 3, template.URLQueryEscaper),
	}
}

// fmtMaxWidth is the largest width or precision fmt honours (larger ones
// are printed as errors).
const fmtMaxWidth = 1e6

// printfBound is an upper bound of the length of fmt.Sprintf(format,
// args...): the format, every width and precision, and each argument
// formatted at most four times its size (%q, %x and % x expand bytes).
func printfBound(format string, args []any) int64 {
	n := int64(len(format)) + 4*argsSize(args)
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		num := int64(0)
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c >= '0' && c <= '9':
				num = min(num*10+int64(c-'0'), fmtMaxWidth)
				continue
			case c == '*':
				n += fmtMaxWidth
				continue
			case c == '.' || c == '+' || c == '-' || c == '#' || c == ' ' || c == '[' || c == ']':
				n += num
				num = 0
				continue
			}
			break
		}
		n += num
	}
	return n
}

// argsSize estimates the formatted size of values: strings by length,
// numbers generously (a float's %f can take 330 digits), composites as the
// sum of their parts.
func argsSize(args []any) int64 {
	var n int64
	for _, a := range args {
		n += valueSize(reflect.ValueOf(a), 0) + 1
	}
	return n
}

func valueSize(v reflect.Value, depth int) int64 {
	if depth > 100 {
		return 1 << 40 // deeper than any data a template sees: refuse
	}
	switch v.Kind() {
	case reflect.Invalid:
		return 5
	case reflect.String:
		return int64(v.Len())
	case reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return 400
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return 24
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 5
		}
		return valueSize(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return 4 * int64(v.Len())
		}
		n := int64(2)
		for i := range v.Len() {
			n += valueSize(v.Index(i), depth+1) + 1
		}
		return n
	case reflect.Map:
		n := int64(5)
		it := v.MapRange()
		for it.Next() {
			n += valueSize(it.Key(), depth+1) + valueSize(it.Value(), depth+1) + 2
		}
		return n
	case reflect.Struct:
		n := int64(2)
		for i := range v.NumField() {
			n += int64(len(v.Type().Field(i).Name)) + valueSize(v.Field(i), depth+1) + 2
		}
		return n
	}
	return 64
}

// instrument adds budget steps to the parse trees of t's templates and
// reports whether the template needs a budget at all: templates without
// loops, {{template}} calls and string-building functions run in time and
// memory proportional to their size and data, and are executed as they are.
func instrument(t *template.Template) bool {
	recursive := false
	uses := false
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		visit(tt.Tree.Root, func(n parse.Node) {
			switch n := n.(type) {
			case *parse.TemplateNode:
				recursive = true
			case *parse.RangeNode:
				uses = true
			case *parse.IdentifierNode:
				if budgetFuncs[n.Ident] {
					uses = true
				}
			}
		})
	}
	if !uses && !recursive && len(t.Templates()) <= 1 {
		return false
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		visit(tt.Tree.Root, func(n parse.Node) {
			if r, ok := n.(*parse.RangeNode); ok {
				if r.List == nil {
					r.List = &parse.ListNode{NodeType: parse.NodeList, Pos: r.Pos}
				}
				r.List.Nodes = append([]parse.Node{stepNode(r.Pos, r.Line, countNodes(r.List))}, r.List.Nodes...)
			}
		})
		if recursive || len(t.Templates()) > 1 {
			root := tt.Tree.Root
			root.Nodes = append([]parse.Node{stepNode(root.Pos, 1, countNodes(root))}, root.Nodes...)
		}
	}
	return true
}

// stepNode is {{bootsync_budget_step cost}} at pos.
func stepNode(pos parse.Pos, line, cost int) *parse.ActionNode {
	num := &parse.NumberNode{NodeType: parse.NodeNumber, Pos: pos, IsInt: true, IsUint: true, IsFloat: true,
		Int64: int64(cost), Uint64: uint64(cost), Float64: float64(cost), Text: fmt.Sprint(cost)}
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Pos: pos, Ident: stepFunc}, num}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Line: line,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Line: line, Cmds: []*parse.CommandNode{cmd}}}
}

// countNodes is the number of nodes in a list, nested lists included: the
// cost of running it once.
func countNodes(l *parse.ListNode) int {
	n := 1
	visit(l, func(parse.Node) { n++ })
	return n
}

// visit calls fn for every node under n (not n itself) that can hold or be
// executed code.
func visit(n parse.Node, fn func(parse.Node)) {
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		if n == nil || reflect.ValueOf(n).IsNil() {
			return
		}
		fn(n)
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IfNode:
			walkBranch(walk, &n.BranchNode)
		case *parse.RangeNode:
			walkBranch(walk, &n.BranchNode)
		case *parse.WithNode:
			walkBranch(walk, &n.BranchNode)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	if l, ok := n.(*parse.ListNode); ok && l != nil {
		for _, c := range l.Nodes {
			walk(c)
		}
		return
	}
	walk(n)
}

func walkBranch(walk func(parse.Node), b *parse.BranchNode) {
	walk(b.Pipe)
	walk(b.List)
	walk(b.ElseList)
}

// budgetedExec is a clone of a template bound to its own budget.
type budgetedExec struct {
	t *template.Template
	b *budget
}

// execPool hands out clones of one instrumented template.
type execPool struct {
	base *template.Template
	pool sync.Pool
}

func (p *execPool) get() (*budgetedExec, error) {
	if e, ok := p.pool.Get().(*budgetedExec); ok {
		return e, nil
	}
	c, err := p.base.Clone()
	if err != nil {
		return nil, err
	}
	e := &budgetedExec{t: c, b: &budget{}}
	c.Funcs(e.b.funcs())
	return e, nil
}

func (p *execPool) put(e *budgetedExec) {
	e.b.ctx = nil
	p.pool.Put(e)
}

// executeBudgeted runs t for data within lim; ctx cancels it.
func (p *execPool) execute(ctx context.Context, w *limitedWriter, data *templateData, lim *effectiveLimits) error {
	e, err := p.get()
	if err != nil {
		return err
	}
	defer p.put(e)
	*e.b = budget{ctx: ctx, stepLimit: lim.TemplateSteps, memLimit: lim.TemplateMemory}
	err = e.t.Execute(w, data)
	if observeBudget != nil {
		observeBudget(e.b.steps, e.b.mem)
	}
	return err
}

// observeBudget, when set (by tests), sees what each budgeted render used.
var observeBudget func(steps, mem int64)

// budgetProblem rewrites a budget error, keeping the template position
// text/template gave it, and says which limit applies.
func budgetProblem(e *Error, err error, lim *effectiveLimits) *Error {
	var be *budgetError
	if !errors.As(err, &be) {
		return e
	}
	e.Limit = be.limit
	e.Msg = "template: " + be.msg + " (" + lim.explain(be.limit) + ")"
	if be.limit == "templateSteps" {
		e.Msg += ": a loop that does not end, or does far more work than a configuration file needs"
	}
	return e
}
