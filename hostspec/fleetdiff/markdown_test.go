package fleetdiff

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
)

// User-controlled text in the PR comment stays inert, as GitHub's
// Markdown (GFM, rendered here by goldmark) reads it: a path like
// /etc/motd`<!-- used to close its code span and open an HTML comment that
// hid the rest of the comment, and a "|" in a setting split its table
// cell.
func TestMarkdownEscapesUserText(t *testing.T) {
	base := fstest.MapFS{
		"fleet.yaml":        {Data: []byte(header + "kind: Fleet\nspec:\n  image: registry.example.com/os/base:1\n")},
		"hosts/web-01.yaml": {Data: []byte(hostFile("web-01", "", ""))},
	}
	head := fstest.MapFS{
		"fleet.yaml": {Data: []byte(header + "kind: Fleet\nspec:\n  image: registry.example.com/os/base:1\n  etc:\n" +
			"    - {path: \"/etc/motd`<!--\", content: \"x\\n\"}\n" +
			"    - {path: \"/etc/a``b|c\", content: \"x\\n\"}\n" +
			"    - {from: files/d, path: /etc/d}\n" +
			"  health:\n    - {name: web, http: \"http://127.0.0.1/a|b\", expect: \"`ok` | <b>\"}\n")},
		"files/d/`x`":       {Data: []byte("y\n")},
		"hosts/web-01.yaml": {Data: []byte(hostFile("web-01", "", ""))},
	}
	rep, err := Compare(context.Background(), load(t, "base", base), load(t, "head", head), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var md, out bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	gfm := goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))
	if err := gfm.Convert(md.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	if strings.Contains(page, "<!--") || strings.Contains(page, "<b>\"") {
		t.Fatalf("user text became HTML:\n%s\n--- markdown:\n%s", page, md.String())
	}
	for _, code := range []string{"/etc/motd`&lt;!--", "/etc/a``b|c", "/etc/d/`x`"} {
		if !strings.Contains(page, "<code>"+code+"</code>") {
			t.Errorf("the path %q is not shown verbatim as code:\n%s", code, page)
		}
	}
	// Every row of every table has as many cells as its header.
	for _, table := range regexp.MustCompile(`(?s)<table>.*?</table>`).FindAllString(page, -1) {
		rows := regexp.MustCompile(`(?s)<tr>.*?</tr>`).FindAllString(table, -1)
		want := strings.Count(rows[0], "<th")
		for _, row := range rows[1:] {
			if got := strings.Count(row, "<td"); got != want {
				t.Errorf("table row has %d cells, want %d: %s", got, want, row)
			}
		}
	}
	if !strings.Contains(page, `<code>{&quot;expect&quot;:&quot;`+"`ok`"+` | \u003cb\u003e&quot;,&quot;http&quot;:&quot;http://127.0.0.1/a|b&quot;`) {
		t.Errorf("the health check's setting is not shown verbatim:\n%s", page)
	}
}
