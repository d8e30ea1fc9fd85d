package fleetdiff

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// sizedFleet is a fleet of n hosts h000000…: a group change moves the hosts
// moved(i) selects from image base:1 to base:2, five hosts get a file of
// their own, 30 hosts get a templated /etc/motd (one row, 30 contents), one
// host is removed and one added.
func sizedFleet(n int, moved func(int) bool) (base, head fstest.MapFS, want map[string]int) {
	base, head = fstest.MapFS{}, fstest.MapFS{}
	fleet := header + "kind: Fleet\nspec:\n  image: registry.example.com/os/base:1\n"
	base["fleet.yaml"] = &fstest.MapFile{Data: []byte(fleet)}
	head["fleet.yaml"] = &fstest.MapFile{Data: []byte(fleet)}
	group := func(image string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(header + "kind: Group\nmetadata: {name: next}\nselector: {labels: {ring: \"1\"}}\nspec: {image: " + image + "}\n")}
	}
	base["groups/next.yaml"], head["groups/next.yaml"] = group("registry.example.com/os/base:1"), group("registry.example.com/os/base:2")
	motd := header + "kind: Group\nmetadata: {name: motd}\nselector: {labels: {motd: \"yes\"}}\nspec:\n  etc:\n    - {path: /etc/motd, content: \"hello {{ .Host.Name }}\\n\", template: true}\n"
	head["groups/motd.yaml"] = &fstest.MapFile{Data: []byte(motd)}
	want = map[string]int{}
	for i := range n {
		name := fmt.Sprintf("h%06d", i)
		var labels, extra string
		switch {
		case i < 6 && i != 3:
			extra = "spec:\n  etc:\n    - {path: /etc/only-" + name + ".conf, content: \"x\\n\"}\n"
			want["own:"+name] = 1
		case i%10 == 3 && i < 300:
			labels = `motd: "yes"`
			want["motd"]++
		case moved(i):
			labels = `ring: "1"`
			want["moved"]++
		}
		base["hosts/"+name+".yaml"] = &fstest.MapFile{Data: []byte(hostFile(name, labels, ""))}
		head["hosts/"+name+".yaml"] = &fstest.MapFile{Data: []byte(hostFile(name, labels, extra))}
	}
	base["hosts/old-01.yaml"] = &fstest.MapFile{Data: []byte(hostFile("old-01", "", ""))}
	head["hosts/new-01.yaml"] = &fstest.MapFile{Data: []byte(hostFile("new-01", "", ""))}
	return base, head, want
}

// The PR comment of the PRs that matter most always fits GitHub's limit:
// hosts with an identical change share one row, every distinct change is
// named, and the note says where the full detail is.
func TestMarkdownFitsForThousandsOfChangedHosts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hosts int
		moved func(int) bool
	}{
		{"1,000 of 10,000 hosts move", 10000, func(i int) bool { return i%10 == 7 }},
		{"10,000 hosts move", 10000, func(int) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, head, want := sizedFleet(tc.hosts, tc.moved)
			rep, err := Compare(context.Background(), load(t, "base1234", base), load(t, "head5678", head), Options{})
			if err != nil {
				t.Fatal(err)
			}
			changed := want["moved"] + want["motd"] + 5 + 2
			if rep.Summary.Changed != changed || len(rep.Hosts) != changed {
				t.Fatalf("%d changed hosts (%d in the report), want %d", rep.Summary.Changed, len(rep.Hosts), changed)
			}
			var md bytes.Buffer
			if err := rep.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			out := md.String()
			if md.Len() > MaxMarkdown {
				t.Fatalf("markdown is %d bytes, over GitHub's %d-character limit", md.Len(), MaxMarkdown)
			}
			t.Logf("%d changed hosts: markdown %d bytes", changed, md.Len())
			first := "h000007"
			if want["moved"] > 1000 {
				first = "h000006"
			}
			rows := []string{
				fmt.Sprintf("| **%s hosts**: `%s`, ", thousands(want["moved"]), first),
				fmt.Sprintf(", … %s more | modified | registry.example.com/os/base:1 -> registry.example.com/os/base:2 | — | — |", thousands(want["moved"]-namesPerRow)),
				"| **30 hosts**: `h000003`, `h000013`, ",
				", … 20 more | modified | — | `/etc/motd` added | — |",
				"| `old-01` | removed | registry.example.com/os/base:1 -> (none) | — | — |",
				"| `new-01` | added | (none) -> registry.example.com/os/base:1 | — | — |",
			}
			for _, n := range []string{"h000000", "h000001", "h000002", "h000004", "h000005"} {
				rows = append(rows, "| `"+n+"` | modified | — | `/etc/only-"+n+".conf` added | — |")
			}
			for _, row := range rows {
				if !strings.Contains(out, row) {
					t.Errorf("markdown lacks the row %q", row)
				}
			}
			if got := len(regexp.MustCompile(`(?m)^\| (\*\*|`+"`"+`)`).FindAllString(out, -1)); got != 9 {
				t.Errorf("%d change rows, want 9 (one per distinct change)", got)
			}
			// The 30 motd contents differ: each is its own section, as
			// many as fit, and the note counts the rest.
			if !strings.Contains(out, "Hosts with an identical change share one row.") || !strings.Contains(out, "`bootsync diff -o json` on the same revisions (`base1234` → `head5678`)") {
				t.Errorf("the note does not say where the full detail is:\n%s", out[max(0, len(out)-600):])
			}
			if !strings.Contains(out, "+hello h000013") {
				t.Errorf("the templated motd's diff is not shown")
			}
		})
	}
}

// When every host changes differently, the table stops at its budget and
// says how many distinct changes and hosts it leaves to -o json.
func TestMarkdownFitsWhenEveryChangeDiffers(t *testing.T) {
	rep := &Report{Schema: SchemaVersion, Base: "base1234", Head: "head5678"}
	for i := range 5000 {
		name := fmt.Sprintf("h%06d", i)
		rep.Hosts = append(rep.Hosts, HostChange{Host: name, Status: StatusModified,
			Files: []FileChange{{Path: "/etc/only-" + name + ".conf", Status: StatusAdded, HeadMeta: "0644 root:root", Diff: "+x\n"}}})
	}
	rep.Summary = Summary{Total: 5000, Changed: 5000}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if md.Len() > MaxMarkdown {
		t.Fatalf("markdown is %d bytes, over the limit", md.Len())
	}
	m := regexp.MustCompile(`\| … \| ([0-9,]+) more distinct changes on ([0-9,]+) hosts: see ` + "`-o json`").FindStringSubmatch(md.String())
	listed := strings.Count(md.String(), "| modified |")
	if m == nil || m[1] != m[2] || m[1] != thousands(5000-listed) || listed < 100 {
		t.Fatalf("table lists %d changes, then %v; want the rest counted", listed, m)
	}
	if !strings.Contains(md.String(), m[1]+" more distinct changes on "+m[1]+" hosts are not listed.") {
		t.Errorf("the note does not count the unlisted changes")
	}
}
