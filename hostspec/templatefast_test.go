package hostspec

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// fastData is data with a value of every type vars can hold.
func fastData(ctx context.Context, lim *effectiveLimits) *templateData {
	return &templateData{
		Host: templateHost{Name: "web-1", Labels: map[string]string{"role": "web", "empty": ""}, Bucket: 7},
		Vars: map[string]any{
			"s": "x", "empty": "", "i": 16, "zero": 0, "i64": int64(-5), "u": uint64(7), "f": 1.5, "fz": 0.0,
			"t": true, "fl": false, "n": nil,
			"l":  []any{"a", 2, nil, 1.5, []any{"x"}, map[string]any{"k": "v"}},
			"ls": []any{"10.0.0.53", "10.0.1.53"},
			"lm": []any{map[string]any{"k": "v1"}, map[string]any{"k": "v2"}},
			"le": []any{},
			"m":  map[string]any{"a": "b", "n": map[string]any{"c": 3}},
			"me": map[string]any{},
		},
		ctx:    ctx,
		limits: lim,
	}
}

func fastTemplateTexts() []string {
	texts := []string{
		"plain text\n",
		"{{ .Host.Name }} ({{ .Host.Labels.role }}) bucket {{ .Host.Bucket }}[{{ .Host.Labels.empty }}]\n",
		"{{ .Host.Labels.missing }}", "{{ .Host }}", "{{ .Host.Labels }}", "{{ . }}", "{{ $ }}", "{{ $.Vars.s }}",
		"{{ .Vars.m.n.c }}", "{{ .Vars.m.n }}", "{{ .Vars.s.x }}", "{{ .Vars.n.x }}", "{{ .Vars.missing }}", "{{ .Vars.m.missing }}",
		"{{ .Secrets }}", "{{ .Secrets.k }}", "{{ .Foo }}", "{{ .Host.Name.X }}", "{{ .Host.Labels.role.x }}", "{{ .Vars }}",
		"{{ if .Host }}h{{ end }}{{ if .Host.Labels }}l{{ end }}{{ if .Host.Bucket }}b{{ end }}",
		"{{ if .Vars.zero }}a{{ else if .Vars.s }}b{{ else }}c{{ end }}",
		"{{ range .Vars.l }}{{ range $.Vars.ls }}x{{ end }}{{ end }}",
		"{{ range .Vars.l }}{{ .k }}{{ end }}", "{{ range .Vars.lm }}{{ .k }};{{ end }}",
		"a  {{- .Vars.s -}}  b {{/* c */}}y",
		"dns={{ range $i, $d := .Vars.ls }}{{ if $i }};{{ end }}{{ $d }}{{ end }}\n",
		"{{ range $e := .Vars.l }}{{ range $e := $.Vars.le }}{{ else }}{{ $e }}{{ end }}|{{ $e }}{{ end }}",
		"{{ range $i, $e := .Vars.lm }}{{ $i }}{{ $e.k }}{{ $e.x }}{{ end }}",
		"{{ range .Vars.ls }}{{ $.Host.Name }}{{ . }}{{ end }}",
		// Outside the subset: text/template renders these.
		`{{ printf "%s" .Vars.s }}`, "{{ with .Vars.m }}{{ .a }}{{ end }}", "{{ $x := .Vars.s }}{{ $x }}",
		"{{ range .Vars.i }}{{ . }}{{ end }}", "{{ range $k, $v := .Vars.m }}{{ $k }}{{ $v }}{{ end }}",
		"{{ range .Vars.l }}{{ break }}{{ end }}", `{{ define "x" }}y{{ end }}{{ template "x" }}`, "{{ .Vars.s | len }}",
		"{{ range .Vars.s }}x{{ end }}", "{{ range .Vars.n }}x{{ else }}e{{ end }}",
	}
	for _, k := range []string{"s", "empty", "i", "zero", "i64", "u", "f", "fz", "t", "fl", "n", "l", "ls", "lm", "le", "m", "me"} {
		texts = append(texts,
			"{{ .Vars."+k+" }}",
			"{{ if .Vars."+k+" }}T{{ else }}F{{ end }}",
			"{{ range .Vars."+k+" }}[{{ . }}]{{ else }}E{{ end }}",
			"{{ range $i, $e := .Vars."+k+" }}{{ $i }}={{ $e }};{{ end }}")
	}
	return texts
}

// renderBoth renders text with the fast path and with text/template alone
// and returns both results (output or problem, and budget steps).
func renderBoth(t *testing.T, text string, lim *effectiveLimits, ctx context.Context) (fast, slow string, compiled bool) {
	t.Helper()
	tm, perr := parseTemplate("t", "files/t.tmpl", nil, []byte(text))
	if perr != nil {
		t.Fatalf("%q: %v", text, perr)
	}
	var steps int64
	observeBudget = func(s, _ int64) { steps = s }
	defer func() { observeBudget = nil }()
	run := func() string {
		steps = -1
		out, err := tm.render(fastData(ctx, lim))
		j, _ := json.Marshal(err)
		return fmt.Sprintf("%q %s steps=%d", out, j, steps)
	}
	fast = run()
	fastTemplates = false
	defer func() { fastTemplates = true }()
	return fast, run(), tm.fast != nil
}

// TestFastTemplatesRenderAsTextTemplate renders templates in and outside
// the fast path's subset, with values of every type vars can hold: the
// output, problems and budget steps must be text/template's.
func TestFastTemplatesRenderAsTextTemplate(t *testing.T) {
	lim := &effectiveLimits{Limits: DefaultLimits}
	compiled := 0
	for _, text := range fastTemplateTexts() {
		fast, slow, c := renderBoth(t, text, lim, context.Background())
		if fast != slow {
			t.Errorf("%q:\nfast path: %s\ntext/template: %s", text, fast, slow)
		}
		if c {
			compiled++
		}
	}
	if compiled < 50 {
		t.Errorf("only %d templates compiled for the fast path", compiled)
	}
	// Limits: output size and steps, and a cancelled render.
	tight := &effectiveLimits{Limits: DefaultLimits}
	tight.FileSize, tight.TemplateSteps = 12, 7
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, text := range []string{"0123456789{{ .Vars.s }}{{ .Vars.s }}{{ .Vars.s }}", "{{ range .Vars.ls }}{{ . }}{{ end }}", "{{ range .Vars.l }}{{ . }}{{ end }}"} {
		for _, c := range []struct {
			lim *effectiveLimits
			ctx context.Context
		}{{tight, context.Background()}, {lim, cancelled}} {
			if fast, slow, _ := renderBoth(t, text, c.lim, c.ctx); fast != slow {
				t.Errorf("%q (limits %+v):\nfast path: %s\ntext/template: %s", text, c.lim.Limits, fast, slow)
			}
		}
	}
}

// TestFastTemplatesOnAGeneratedFleet renders every host of a generated
// fleet, and of the example fleet, with and without the fast path.
func TestFastTemplatesOnAGeneratedFleet(t *testing.T) {
	fsys := generated(t, 300, 50).MapFS()
	fast, example := resolveAll(t, fsys), resolveAll(t, os.DirFS("../examples/fleet"))
	fastTemplates = false
	slow, exampleSlow := resolveAll(t, fsys), resolveAll(t, os.DirFS("../examples/fleet"))
	fastTemplates = true
	for h, want := range slow {
		if fast[h] != want {
			t.Errorf("host %s differs with the fast path:\n%s\ntext/template:\n%s", h, fast[h], want)
		}
		if !strings.Contains(want, "nmconnection") && h != "nofile-1" {
			t.Errorf("host %s has no rendered keyfile", h)
		}
	}
	for h, want := range exampleSlow {
		if example[h] != want {
			t.Errorf("examples/fleet host %s differs with the fast path:\n%s\ntext/template:\n%s", h, example[h], want)
		}
	}
}
