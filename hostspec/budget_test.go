package hostspec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

const pinned = "registry.example.com/os/base@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// budgetFleet is a fleet whose host web-01 renders tmpl from
// files/t.tmpl, with limits (the body of `limits:`, may be empty).
func budgetFleet(limits, tmpl string) fstest.MapFS {
	fleet := header + "kind: Fleet\nspec:\n  image: " + pinned + "\n  etc:\n    - {path: /etc/t.conf, from: files/t.tmpl, template: true}\n"
	if limits != "" {
		fleet += "limits:\n" + limits
	}
	return files("fleet.yaml", fleet, "hosts/web-01.yaml", header+"kind: Host\nmetadata: {name: web-01}\n", "files/t.tmpl", tmpl)
}

// renderProblem resolves web-01 and returns its one problem, checking that
// it names the template file and the host and took little time.
func renderProblem(t *testing.T, fsys fs.FS, opts ...LoadOption) *Error {
	t.Helper()
	repo := mustLoad(t, fsys, opts...)
	start := time.Now()
	_, err := repo.Resolve(context.Background(), "web-01", nil)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the render took %s", d)
	}
	list := problems(t, err)
	if len(list) != 1 {
		t.Fatalf("want one problem, got %v", list)
	}
	e := list[0]
	if e.File != "files/t.tmpl" || e.Host != "web-01" || e.Line == 0 || !strings.Contains(e.Error(), "files/t.tmpl:") {
		t.Fatalf("problem %q does not name the template's file, line and the host", e)
	}
	return e
}

// Loops and recursion are bounded by steps, growing strings by memory,
// whatever the template does; the problem names the file, the line of the
// loop or call, the host and the limit.
func TestRunawayTemplatesAreStoppedByTheirBudget(t *testing.T) {
	limits := "  templateSteps: 20000\n  templateMemory: 1Mi\n"
	cases := []struct {
		name, tmpl, limit string
		line              int
		msg               string
	}{
		{"silent range", "ok\n{{range 1000000000}}{{end}}\n", "templateSteps", 2, "budget of 20000 steps (limits.templateSteps = 20000)"},
		{"nested ranges", "{{range 100}}\n{{range 100}}{{range 100}}{{end}}{{end}}{{end}}", "templateSteps", 2, "steps"},
		{"range over a range's variable", "{{range $i := 100000}}{{range $i}}{{end}}{{end}}", "templateSteps", 1, "steps"},
		{"recursion", `{{define "r"}}{{template "r" .}}{{template "r" .}}{{end}}` + "\n" + `{{template "r" .}}`, "templateSteps", 1, "steps"},
		{"doubling printf", `{{$x := "0123456789abcdef"}}` + "\n" + `{{range 64}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`, "templateMemory", 2, "templateMemory = 1 MiB"},
		{"printf width", `{{range 100}}{{$x := printf "%1000000d%1000000d" 1 2}}{{end}}`, "templateMemory", 1, "printf could produce"},
		{"printf star width", `{{range 100}}{{$x := printf "%*d" 999999 1}}{{end}}`, "templateMemory", 1, "printf"},
		{"print growth", `{{$x := "abcdefgh"}}{{range 40}}{{$x = print $x $x}}{{end}}`, "templateMemory", 1, "print"},
		{"html growth", `{{$x := "<<<<<<<<"}}{{range 40}}{{$x = html $x $x}}{{end}}`, "templateMemory", 1, "html"},
		{"js growth", `{{$x := "<<<<<<<<"}}{{range 40}}{{$x = js $x $x}}{{end}}`, "templateMemory", 1, "js"},
		{"urlquery growth", `{{$x := "%%%%%%%%"}}{{range 40}}{{$x = urlquery $x $x}}{{end}}`, "templateMemory", 1, "urlquery"},
		{"output", `{{range 2000}}{{printf "%1000d" 1}}{{end}}`, "templateMemory", 1, "printf could produce"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := renderProblem(t, budgetFleet(limits, c.tmpl))
			if e.Limit != c.limit || e.Line != c.line || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("problem = %q (limit %q, line %d), want limit %q at line %d saying %q", e, e.Limit, e.Line, c.limit, c.line, c.msg)
			}
			if c.limit != "" && LimitExceeded(ErrorList{e}) != c.limit {
				t.Errorf("LimitExceeded = %q", LimitExceeded(ErrorList{e}))
			}
		})
	}
}

// A template within its budget renders as before, in every way it could
// use the budgeted functions and loops.
func TestTemplatesWithinBudgetRenderUnchanged(t *testing.T) {
	tmpl := `{{range $i, $d := .Vars.dns}}{{if $i}};{{end}}{{$d}}{{end}}
{{printf "%-8s|%05d|%.2f" .Host.Name 42 3.14159}} {{print "a" 1}} {{println "b"}}{{html "<x>"}} {{js "'"}} {{urlquery "a b"}}
{{define "x"}}[{{.}}]{{end}}{{template "x" .Host.Name}}{{range 3}}{{.}}{{break}}{{end}}`
	fsys := budgetFleet("", tmpl)
	fsys["fleet.yaml"].Data = append(fsys["fleet.yaml"].Data, []byte("  vars: {dns: [10.0.0.1, 10.0.0.2]}\n")...)
	fsys["fleet.yaml"].Data = []byte(strings.Replace(string(fsys["fleet.yaml"].Data), "  etc:", "  vars: {dns: [10.0.0.1, 10.0.0.2]}\n  etc:", 1))
	fsys["fleet.yaml"].Data = []byte(strings.TrimSuffix(string(fsys["fleet.yaml"].Data), "  vars: {dns: [10.0.0.1, 10.0.0.2]}\n"))
	spec := mustResolve(t, mustLoad(t, fsys), "web-01", nil)
	want := "10.0.0.1;10.0.0.2\nweb-01  |00042|3.14 a1 b\n&lt;x&gt; \\' a+b\n[web-01]0"
	if got := string(spec.Etc[0].Content); got != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}
}

// Cancelling the context (the agent's SIGTERM) stops a render at once,
// even one whose budget would let it run for hours.
func TestCancelStopsARender(t *testing.T) {
	fsys := budgetFleet("  templateSteps: 1000000000000000\n", "{{range 1000000000000}}{{end}}")
	repo := mustLoad(t, fsys, WithLimitCeilings(Limits{TemplateSteps: 1 << 60}))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := repo.Resolve(ctx, "web-01", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve after cancel = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the render went on for %s after it was cancelled", d)
	}
}

// fleet.yaml sets the limits within the machine's ceilings: it can raise
// them (up to a ceiling) and lower them; a request over a ceiling is capped,
// and the problem says so.
func TestFleetLimitsWithinCeilings(t *testing.T) {
	loop := "{{range 30000}}{{end}}"
	// The default (1,000,000 steps) lets it pass.
	mustResolve(t, mustLoad(t, budgetFleet("", loop)), "web-01", nil)
	// fleet.yaml lowers the limit.
	e := renderProblem(t, budgetFleet("  templateSteps: 10000\n", loop))
	if !strings.Contains(e.Msg, "limits.templateSteps = 10000") {
		t.Errorf("problem %q", e)
	}
	// A machine ceiling caps what fleet.yaml asks for, and says so.
	e = renderProblem(t, budgetFleet("  templateSteps: 5000000\n", "{{range 100000}}{{end}}"), WithLimitCeilings(Limits{TemplateSteps: 50000}))
	if !strings.Contains(e.Msg, "fleet.yaml asks for 5000000; this machine's ceiling is 50000") {
		t.Errorf("problem %q does not explain the ceiling", e)
	}
	// Within the ceiling, fleet.yaml raises it.
	mustResolve(t, mustLoad(t, budgetFleet("  templateSteps: 5000000\n", "{{range 2000000}}{{end}}")), "web-01", nil)

	// Bad values name the line and field.
	fleet := header + "kind: Fleet\nspec:\n  image: " + pinned + "\nlimits:\n  fileSize: lots\n  templateSteps: -1\n  steps: 3\n"
	_, err := Load(context.Background(), files("fleet.yaml", fleet))
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "fileSize"), "limits.fileSize", `"lots" is not a positive integer`)
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "templateSteps"), "limits.templateSteps", "not a positive integer")
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "steps: 3"), "limits.steps", "unknown")
	// limits belong to fleet.yaml only.
	host := header + "kind: Host\nmetadata: {name: web-01}\nlimits: {fileSize: 1Gi}\n"
	_, err = Load(context.Background(), with(budgetFleet("", "x"), "hosts/web-01.yaml", host))
	findProblem(t, err, "hosts/web-01.yaml", lineOf(t, host, "limits"), "limits", "unknown")
}

// Files are checked against their limits before they are read; the
// problem names the file, the entry that refers to it and the limit.
func TestFileSizeLimits(t *testing.T) {
	big := strings.Repeat("x", 3000)
	fsys := budgetFleet("  fileSize: 2Ki\n  documentSize: 4Ki\n", "small")
	fsys["files/big.txt"] = &fstest.MapFile{Data: []byte(big), Mode: 0o644}
	fsys["fleet.yaml"].Data = []byte(strings.Replace(string(fsys["fleet.yaml"].Data), "  etc:\n", "  etc:\n    - {path: /etc/big.txt, from: files/big.txt}\n", 1))
	hostFile := header + "kind: Host\nmetadata: {name: web-02}\nspec:\n  vars: {pad: \"" + strings.Repeat("y", 5000) + "\"}\n"
	fsys["hosts/web-02.yaml"] = &fstest.MapFile{Data: []byte(hostFile), Mode: 0o644}
	_, err := Load(context.Background(), fsys)
	fleet := string(fsys["fleet.yaml"].Data)
	e := findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "files/big.txt"), "spec.etc[0].from", "files/big.txt is 2.9 KiB, larger than limits.fileSize = 2 KiB")
	if e.Limit != "fileSize" {
		t.Errorf("limit = %q", e.Limit)
	}
	findProblem(t, err, "hosts/web-02.yaml", 0, "", "hosts/web-02.yaml is 5 KiB, larger than limits.documentSize = 4 KiB")

	// Rendered output is bounded by fileSize too (the whole output: no line).
	_, err = mustLoad(t, budgetFleet("  fileSize: 2Ki\n", "{{range 3000}}x{{end}}")).Resolve(context.Background(), "web-01", nil)
	e = findProblem(t, err, "files/t.tmpl", 0, "etc[/etc/t.conf]", "rendered template is larger than limits.fileSize = 2 KiB")
	if e.Limit != "fileSize" || e.Host != "web-01" {
		t.Errorf("problem %q: limit %q", e, e.Limit)
	}

	// The repository as a whole: reported once.
	many := budgetFleet("  repoSize: 8Ki\n", "x")
	for i := range 40 {
		n := fmt.Sprintf("web-%03d", i+10)
		many["hosts/"+n+".yaml"] = &fstest.MapFile{Data: []byte(header + "kind: Host\nmetadata: {name: " + n + "}\n" + strings.Repeat("# padding\n", 30)), Mode: 0o644}
	}
	list := problems(t, func() error { _, err := Load(context.Background(), many); return err }())
	if len(list) != 1 || list[0].Limit != "repoSize" || !strings.Contains(list[0].Msg, "limits.repoSize = 8 KiB") {
		t.Fatalf("repoSize problems: %v", list)
	}
}

// The defaults are far above what honest fleets use: the example fleet and
// a generated 10,000-host fleet, measured here (steps and memory of the
// busiest render, largest file, repository size).
func TestHonestFleetsStayFarBelowTheDefaults(t *testing.T) {
	var mu sync.Mutex
	var maxSteps, maxMem int64
	observeBudget = func(steps, mem int64) {
		mu.Lock()
		maxSteps, maxMem = max(maxSteps, steps), max(maxMem, mem)
		mu.Unlock()
	}
	t.Cleanup(func() { observeBudget = nil })
	gen, err := fleetgen.Generate(fleetgen.Config{Hosts: 10000, Groups: 50, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, fsys := range map[string]fs.FS{"examples/fleet": os.DirFS("../examples/fleet"), "the schema's example": exampleRepo(), "genfleet 10k": gen.MapFS()} {
		maxSteps, maxMem = 0, 0
		repo := mustLoad(t, fsys, WithRevision("x"))
		renderSharing = false
		err := repo.Validate(context.Background())
		renderSharing = true
		if err != nil {
			t.Fatal(err)
		}
		var largest, total int64
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fi, _ := d.Info()
				largest, total = max(largest, fi.Size()), total+fi.Size()
			}
			return nil
		})
		t.Logf("%s: busiest render %d steps, %d bytes from functions; largest file %d bytes; repository %d bytes", name, maxSteps, maxMem, largest, total)
		d := DefaultLimits
		if maxSteps*100 > d.TemplateSteps || maxMem*100 > d.TemplateMemory || largest*100 > d.DocumentSize || total*10 > d.RepoSize {
			t.Errorf("%s uses more than 1%% of a default limit (10%% of repoSize)", name)
		}
	}
}

// The budget's extra pipeline command does not change what an author sees
// when a range itself fails (the same position and text as before budgets).
func TestRangeErrorsStillPointAtTheAuthorsPipeline(t *testing.T) {
	fsys := budgetFleet("", "{{range .Vars.s}}x{{end}}")
	fsys["fleet.yaml"].Data = []byte(strings.Replace(string(fsys["fleet.yaml"].Data), "  etc:", "  vars: {s: hello}\n  etc:", 1))
	e := renderProblem(t, fsys)
	if e.Line != 1 || e.Column != 14 || e.Msg != "template: at <.Vars.s>: range can't iterate over hello" {
		t.Fatalf("problem = %q (column %d)", e, e.Column)
	}
}
