package hostile

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// Image is a digest-pinned image: fleets built here need no registry.
const Image = "registry.example.com/os/base@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// Runaway templates from the reproductions.
const (
	// SilentRange loops a billion times, calls nothing and writes nothing.
	SilentRange = "{{range 1000000000}}{{end}}"
	// NestedRange nests three ranges of 100,000: 10^15 iterations.
	NestedRange = "{{range 100000}}{{range 100000}}{{range 100000}}{{end}}{{end}}{{end}}"
	// Doubling doubles a string 64 times: 16 × 2^64 bytes, never written out.
	Doubling = `{{$x := "0123456789abcdef"}}{{range 64}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`
)

// FleetYAML is a fleet.yaml whose hosts get the image above and, for each
// etc line, an entry of spec.etc (written as YAML flow mappings). limits,
// when not empty, is the body of the top-level limits: mapping.
func FleetYAML(limits string, etc ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: bootsync.dev/v1alpha1\nkind: Fleet\nspec:\n  image: " + Image + "\n")
	if len(etc) > 0 {
		b.WriteString("  etc:\n")
		for _, e := range etc {
			b.WriteString("    - " + e + "\n")
		}
	}
	if limits != "" {
		b.WriteString("limits:\n")
		for _, l := range strings.Split(strings.TrimSpace(limits), "\n") {
			b.WriteString("  " + strings.TrimSpace(l) + "\n")
		}
	}
	return b.String()
}

// HostYAML declares a host with no overrides.
func HostYAML(name string) string {
	return "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata:\n  name: " + name + "\n"
}

// Hosts declares n hosts web-001 … as hosts/<name>.yaml files.
func Hosts(n int) map[string]string {
	out := map[string]string{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("web-%03d", i)
		out["hosts/"+name+".yaml"] = HostYAML(name)
	}
	return out
}

// Repo is a fleet repository in a local Git repository.
type Repo struct {
	t   testing.TB
	Dir string
}

// NewRepo makes an empty Git repository.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir()
	gittest.Git(t, dir, nil, "init", "-q", "-b", "main")
	return &Repo{t: t, Dir: dir}
}

// Commit writes files and commits everything.
func (r *Repo) Commit(msg string, files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.CommitAll(msg)
}

// CommitAll commits the working tree as it is.
func (r *Repo) CommitAll(msg string) {
	r.t.Helper()
	gittest.Git(r.t, r.Dir, nil, "add", "-A")
	gittest.Git(r.t, r.Dir, nil, "-c", "core.bigFileThreshold=1m", "commit", "-q", "--allow-empty", "-m", msg)
}

// TemplateFleet is a repository whose one host renders tmpl into
// /etc/runaway.conf from files/runaway.tmpl.
func TemplateFleet(t testing.TB, limits, tmpl string) *Repo {
	t.Helper()
	r := NewRepo(t)
	r.Commit("runaway template", map[string]string{
		"fleet.yaml":         FleetYAML(limits, "{path: /etc/runaway.conf, from: files/runaway.tmpl, template: true}"),
		"hosts/web-001.yaml": HostYAML("web-001"),
		"files/runaway.tmpl": tmpl,
	})
	return r
}

// WriteTextFile writes a text file of about size bytes: numbered lines of
// 64 bytes, with every step-th line changed when variant is not 0 (so two
// variants differ in many places, as a regenerated file would).
func WriteTextFile(t testing.TB, path string, size int64, variant, step int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i, n := int64(0), int64(0); n < size; i++ {
		v := 0
		if variant != 0 && step > 0 && i%int64(step) == 0 {
			v = variant
		}
		k, _ := fmt.Fprintf(w, "line %012d variant %04d padding padding padding padding pad\n", i, v)
		n += int64(k)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// BigTemplateFleet is a repository of hosts web-001…web-<hosts> whose
// parent commit renders a small template for every host and whose HEAD
// replaces it with a template of size bytes (mostly text, naming the host
// once per line).
func BigTemplateFleet(t testing.TB, limits string, hosts int, size int64) *Repo {
	t.Helper()
	r := NewRepo(t)
	files := Hosts(hosts)
	files["fleet.yaml"] = FleetYAML(limits, "{path: /etc/big.conf, from: files/big.tmpl, template: true}")
	files["files/big.tmpl"] = "host {{ .Host.Name }}\n"
	r.Commit("small template", files)
	var b strings.Builder
	for i := 0; int64(b.Len()) < size; i++ {
		fmt.Fprintf(&b, "%08d {{ .Host.Name }} padding padding padding padding padding padding\n", i)
	}
	r.Commit("big template", map[string]string{"files/big.tmpl": b.String()})
	return r
}

// BigFileFleet is a working tree (uncommitted) whose host gets files/big.txt,
// a text file of size bytes.
func BigFileFleet(t testing.TB, limits string, size int64) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "hosts"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(FleetYAML(limits, "{path: /etc/big.txt, from: files/big.txt}")), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "hosts", "web-001.yaml"), []byte(HostYAML("web-001")), 0o644))
	WriteTextFile(t, filepath.Join(dir, "files", "big.txt"), size, 0, 0)
	return dir
}

// TextDiffFleet is a repository whose host gets files/big.txt, a text file
// of size bytes, which HEAD changes in one line of every hundred.
func TextDiffFleet(t testing.TB, limits string, size int64) *Repo {
	t.Helper()
	r := NewRepo(t)
	WriteTextFile(t, filepath.Join(r.Dir, "files", "big.txt"), size, 0, 0)
	r.Commit("big text file", map[string]string{
		"fleet.yaml":         FleetYAML(limits, "{path: /etc/big.txt, from: files/big.txt}"),
		"hosts/web-001.yaml": HostYAML("web-001"),
	})
	WriteTextFile(t, filepath.Join(r.Dir, "files", "big.txt"), size, 1, 100)
	r.CommitAll("change one line in a hundred")
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
