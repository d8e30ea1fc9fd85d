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
