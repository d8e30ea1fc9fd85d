package hostspec

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
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
// parsed template that can loop is instrumented: the pipeline of each range
// gets one more command, rangeFunc, which sees the value about to be ranged
// over and charges its length times the size of the body before the first
// iteration (so {{range 1000000000}} fails at once); each {{template}} call
// passes its data through callFunc, which charges the size of the called
// template. The steps are the nodes a render executes. The template cannot
// call or skip these functions itself (they are not in the parse-time
// function map). The functions that build strings (printf, print, println,
// html, js, urlquery) are replaced by versions that check, before
// building, that the result fits the render's memory budget, and charge
// what they produce. Steps and bytes are counted, not timed: the same
// template passes or fails the same way in CI and on every host.
// Cancelling the context (SIGTERM) ends a render at its next range or call,
// and a long range over an integer checks it as it goes.
//
// One call per range execution (not per iteration) keeps the cost for
// honest templates at about half a microsecond per range.
//
// Templates in the fast path's subset (template.go) usually run without
// text/template: that path charges each range the same steps, reading the
// cost from the rangeFunc command, and leaves a render that would exceed a
// limit to text/template, which then fails it as described here.
//
// Functions are resolved at execution time from the template's function
// map, so each concurrent render needs its own budget bound into its own
// copy of the map: tmpl keeps a pool of clones (Clone shares the parse
// trees) with their budgets.

// The functions instrumented templates call; users cannot name them (they
// do not exist when their text is parsed).
const (
	rangeFunc = "bootsync_budget_range"
	callFunc  = "bootsync_budget_call"
)

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

// charge counts steps and stops the render when they exceed the budget or
// the render is cancelled.
func (b *budget) chargeSteps(n int64) error {
	if n < 0 || b.steps+n > b.stepLimit || b.steps+n < b.steps {
		b.steps = b.stepLimit + 1
		return &budgetError{limit: "templateSteps", msg: fmt.Sprintf("the template runs longer than its budget of %d steps", b.stepLimit)}
	}
	b.steps += n
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("rendering stopped: %w", err)
	}
	return nil
}

// rangeOver charges a range for all its iterations up front and returns
// the value to range over: v itself, or for a long range over an integer
// an equivalent iterator that notices cancellation.
func (b *budget) rangeOver(cost int, v any) (any, error) {
	rv := reflect.ValueOf(v)
	n := int64(1)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = max(rv.Int(), 0)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n = int64(min(rv.Uint(), math.MaxInt64))
	case reflect.Slice, reflect.Array, reflect.Map, reflect.String:
		n = int64(rv.Len())
	}
	total := n * int64(cost)
	if n != 0 && total/n != int64(cost) {
		total = -1 // overflow
	}
	if err := b.chargeSteps(total + 1); err != nil {
		return nil, err
	}
	if rv.CanInt() && n > longRange {
		return b.countTo(int(n)), nil
	}
	return v, nil
}

// longRange is the length from which a range over an integer checks for
// cancellation as it goes (only possible when the limits allow that many
// steps; shorter ranges run at full speed, about 40 ns an iteration).
const longRange = 1 << 20

// countTo yields 0…n-1 like a range over n, checking for cancellation.
func (b *budget) countTo(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if i&1023 == 0 && b.ctx.Err() != nil {
				return // the next budgeted call reports it
			}
			if !yield(i) {
				return
			}
		}
	}
}

// call charges a {{template}} call and passes its data on.
func (b *budget) call(cost int, data any) (any, error) {
	if err := b.chargeSteps(int64(cost)); err != nil {
		return nil, err
	}
	return data, nil
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
		rangeFunc: b.rangeOver,
		callFunc:  b.call,
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

// instrument adds the budget's calls to the parse trees of t's templates
// and reports whether the template needs a budget at all: templates
// without loops, {{template}} calls and string-building functions run in
// time and memory proportional to their size and data, and are executed as
// they are.
func instrument(t *template.Template) bool {
	uses := false
	sizes := map[string]int{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		sizes[tt.Name()] = countNodes(tt.Tree.Root)
		visit(tt.Tree.Root, func(n parse.Node) {
			switch n := n.(type) {
			case *parse.TemplateNode, *parse.RangeNode:
				uses = true
			case *parse.IdentifierNode:
				if budgetFuncs[n.Ident] {
					uses = true
				}
			}
		})
	}
	if !uses {
		return false
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		visit(tt.Tree.Root, func(n parse.Node) {
			switch n := n.(type) {
			case *parse.RangeNode:
				n.Pipe.Cmds = append(n.Pipe.Cmds, budgetCommand(n.Pipe, rangeFunc, countNodes(n.List)))
			case *parse.TemplateNode:
				cost := max(sizes[n.Name], 1)
				if n.Pipe == nil {
					// {{template "x"}} runs x with nil data.
					n.Pipe = &parse.PipeNode{NodeType: parse.NodePipe, Pos: n.Pos, Line: n.Line}
					cmd := budgetCommand(n.Pipe, callFunc, cost)
					cmd.Args = append(cmd.Args, &parse.NilNode{NodeType: parse.NodeNil, Pos: n.Pos})
					n.Pipe.Cmds = []*parse.CommandNode{cmd}
				} else {
					n.Pipe.Cmds = append(n.Pipe.Cmds, budgetCommand(n.Pipe, callFunc, cost))
				}
			}
		})
	}
	return true
}

// budgetCommand is the command `fn cost` to append to pipe; a pipeline
// passes it the value so far as its last argument. It takes the position
// and text of the pipeline's last command, so that an error while ranging
// ("range can't iterate over …") still points at what the author wrote.
func budgetCommand(pipe *parse.PipeNode, fn string, cost int) *parse.CommandNode {
	pos, text := pipe.Pos, fmt.Sprint(cost)
	if len(pipe.Cmds) > 0 {
		last := pipe.Cmds[len(pipe.Cmds)-1]
		pos, text = last.Pos, last.String()
		if len(last.Args) > 0 {
			pos = last.Args[0].Position()
		}
	}
	num := &parse.NumberNode{NodeType: parse.NodeNumber, Pos: pos, IsInt: true, IsUint: true, IsFloat: true,
		Int64: int64(cost), Uint64: uint64(cost), Float64: float64(cost), Text: text}
	return &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Pos: pos, Ident: fn}, num}}
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
	if err == nil && ctx.Err() != nil {
		// A long range stopped early: the output is incomplete.
		err = fmt.Errorf("rendering stopped: %w", ctx.Err())
	}
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
