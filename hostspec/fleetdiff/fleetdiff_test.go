package fleetdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bootsync/bootsync/hostspec"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const header = "apiVersion: bootsync.dev/v1alpha1\n"

func hostFile(name, labels, extra string) string {
	return header + "kind: Host\nmetadata:\n  name: " + name + "\n  labels: {" + labels + "}\n" + extra
}

// baseFleet is a small fleet: three hosts, two groups, a template.
func baseFleet() fstest.MapFS {
	return fstest.MapFS{
		"fleet.yaml": {Data: []byte(header + `kind: Fleet
spec:
  image: registry.example.com/os/base:stable
  etc:
    - path: /etc/chrony.conf
      from: files/chrony.conf.tmpl
      template: true
    - path: /etc/motd
      content: "hello {{ .Host.Name }}\n"
      template: true
    - path: /etc/legacy.conf
      content: "old\n"
  vars: {ntp: [a.pool.ntp.org]}
  health:
    - {name: sshd, systemd: sshd.service}
  update: {reboot: immediate}
`)},
		"files/chrony.conf.tmpl": {Data: []byte("{{ range .Vars.ntp }}pool {{ . }} iburst\n{{ end }}driftfile /var/lib/chrony/drift\n")},
		"groups/canary.yaml": {Data: []byte(header + `kind: Group
metadata: {name: canary}
selector: {labels: {ring: "0"}}
priority: 10
spec: {image: registry.example.com/os/base:next}
`)},
		"groups/web.yaml": {Data: []byte(header + `kind: Group
metadata: {name: web}
selector: {hosts: ["web-*"]}
spec:
  health:
    - {name: nginx, systemd: nginx.service}
`)},
		"hosts/web-01.yaml": {Data: []byte(hostFile("web-01", `ring: "0"`, ""))},
		"hosts/web-02.yaml": {Data: []byte(hostFile("web-02", "", ""))},
		"hosts/db-01.yaml":  {Data: []byte(hostFile("db-01", "", ""))},
		"bootsync.lock": {Data: []byte(header + `kind: Lock
images:
  registry.example.com/os/base:stable: sha256:1111111111111111111111111111111111111111111111111111111111111111
  registry.example.com/os/base:next: sha256:2222222222222222222222222222222222222222222222222222222222222222
`)},
	}
}

// headFleet changes one thing of every kind.
func headFleet() fstest.MapFS {
	fs := baseFleet()
	clone := fstest.MapFS{}
	for k, v := range fs {
		clone[k] = &fstest.MapFile{Data: append([]byte(nil), v.Data...)}
	}
	edit := func(name, old, new string) {
		s := string(clone[name].Data)
		if !strings.Contains(s, old) {
			panic("edit " + name + ": " + old)
		}
		clone[name].Data = []byte(strings.Replace(s, old, new, 1))
	}
	// A second NTP server for everybody: chrony.conf changes everywhere.
	edit("fleet.yaml", "vars: {ntp: [a.pool.ntp.org]}", "vars: {ntp: [a.pool.ntp.org, b.pool.ntp.org]}")
	// legacy.conf goes away.
	edit("fleet.yaml", "    - path: /etc/legacy.conf\n      content: \"old\\n\"\n", "    - path: /etc/legacy.conf\n      absent: true\n")
	// The lock moves :next to a new digest: canary hosts change image.
	edit("bootsync.lock", "2222222222222222222222222222222222222222222222222222222222222222", "3333333333333333333333333333333333333333333333333333333333333333")
	// web hosts get a window.
	edit("groups/web.yaml", "spec:\n", "spec:\n  update:\n    reboot: window\n    windows: [{days: [sat], start: \"02:00\", duration: 2h, timezone: UTC}]\n")
	// db-01 leaves, web-03 arrives with a file of its own.
	delete(clone, "hosts/db-01.yaml")
	clone["hosts/web-03.yaml"] = &fstest.MapFile{Data: []byte(hostFile("web-03", "", `spec:
  etc:
    - {path: /etc/web-03.conf, content: "only here\n", mode: "0600"}
`))}
	return clone
}

func load(t *testing.T, name string, fsys fstest.MapFS) Revision {
	t.Helper()
	repo, err := hostspec.Load(context.Background(), fsys, hostspec.WithRevision(name))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return Revision{Name: name, Repo: repo, FS: fsys}
}

func compare(t *testing.T, opts Options) *Report {
	t.Helper()
	rep, err := Compare(context.Background(), load(t, "base1234", baseFleet()), load(t, "head5678", headFleet()), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it after review):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestCompareFindsEveryKindOfChange(t *testing.T) {
	rep := compare(t, Options{})
	s := rep.Summary
	if s.Total != 4 || s.Changed != 4 || s.Unchanged != 0 || s.Added != 1 || s.Removed != 1 {
		t.Fatalf("summary = %+v, want 4 total, 4 changed, 1 added, 1 removed", s)
	}
	if !s.FleetChanged || !s.LockChanged {
		t.Errorf("fleet/lock changed = %v/%v, want both", s.FleetChanged, s.LockChanged)
	}
	if len(s.Groups) != 1 || s.Groups[0] != (GroupChange{Name: "web", Status: StatusModified}) {
		t.Errorf("groups = %+v, want web modified", s.Groups)
	}
	byHost := map[string]HostChange{}
	for _, h := range rep.Hosts {
		byHost[h.Host] = h
	}
	if h := byHost["db-01"]; h.Status != StatusRemoved || h.Image == nil || h.Image.Head != nil {
		t.Errorf("db-01 = %+v, want removed with its image going away", h)
	}
	web3 := byHost["web-03"]
	if web3.Status != StatusAdded || len(web3.Files) == 0 {
		t.Fatalf("web-03 = %+v, want added with files", web3)
	}
	web1 := byHost["web-01"]
	if web1.Image == nil || web1.Image.Base.Digest == web1.Image.Head.Digest || web1.Image.Base.Ref != web1.Image.Head.Ref {
		t.Errorf("web-01 image = %+v, want the same ref with a new locked digest", web1.Image)
	}
	if h := byHost["web-02"]; h.Image != nil {
		t.Errorf("web-02 image changed: %+v; only :next moved in the lock", h.Image)
	}
	files := map[string]FileChange{}
	for _, f := range web1.Files {
		files[f.Path] = f
	}
	if f := files["/etc/chrony.conf"]; f.Status != StatusModified || !strings.Contains(f.Diff, "+pool b.pool.ntp.org iburst") {
		t.Errorf("chrony.conf change = %+v", f)
	}
	if f := files["/etc/legacy.conf"]; f.Status != StatusRemoved || f.HeadSHA256 != "" {
		t.Errorf("legacy.conf change = %+v, want removed (absent: true)", f)
	}
	if _, ok := files["/etc/motd"]; ok {
		t.Errorf("motd did not change but is listed")
	}
	found := false
	for _, c := range web1.Settings {
		if c.Field == "update.reboot" && c.Base == "immediate" && c.Head == "window" {
			found = true
		}
	}
	if !found {
		t.Errorf("web-01 settings = %+v, want update.reboot immediate -> window", web1.Settings)
	}
}

func TestCompareUnchanged(t *testing.T) {
	rep, err := Compare(context.Background(), load(t, "a", baseFleet()), load(t, "b", baseFleet()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changed() || rep.Summary.Unchanged != 3 || len(rep.Hosts) != 0 {
		t.Fatalf("identical revisions: %+v", rep.Summary)
	}
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "No host changes (3 hosts checked)") {
		t.Fatalf("markdown for no change:\n%s", buf.String())
	}
}

func TestCompareHostGlob(t *testing.T) {
	rep := compare(t, Options{HostGlob: "db-*"})
	if rep.Summary.Total != 1 || len(rep.Hosts) != 1 || rep.Hosts[0].Host != "db-01" {
		t.Fatalf("--host db-*: %+v", rep.Hosts)
	}
	if _, err := Compare(context.Background(), load(t, "a", baseFleet()), load(t, "b", baseFleet()), Options{HostGlob: "["}); err == nil {
		t.Fatal("a malformed glob was accepted")
	}
}

func TestCompareRefusesBrokenRevision(t *testing.T) {
	broken := headFleet()
	broken["files/chrony.conf.tmpl"] = &fstest.MapFile{Data: []byte("{{ .Vars.missing }}\n")}
	_, err := Compare(context.Background(), load(t, "base", baseFleet()), load(t, "head", broken), Options{})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Compare with a template error = %v, want an error naming the missing key", err)
	}
}

func TestGoldenOutputs(t *testing.T) {
	rep := compare(t, Options{})
	var js, md, txt bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", js.Bytes())
	golden(t, "report.md", md.Bytes())
	golden(t, "report.txt", txt.Bytes())

	// The JSON is stable: it decodes into the documented shape.
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Schema != SchemaVersion {
		t.Fatalf("JSON round trip: %v, schema %q", err, back.Schema)
	}
}

func TestMarkdownStaysUnderCommentLimit(t *testing.T) {
	rep := compare(t, Options{})
	big := rep.Hosts[0]
	big.Files = []FileChange{{Path: "/etc/big", Status: StatusModified, Diff: strings.Repeat("+line\n", 20000)}}
	rep.Hosts = append(rep.Hosts, big, big)
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if md.Len() > 65536 {
		t.Fatalf("markdown is %d bytes, over GitHub's comment limit", md.Len())
	}
	if !strings.Contains(md.String(), "not expanded") {
		t.Fatal("omitted hosts are not announced")
	}
}

func TestUnifiedDiffMarksMissingNewline(t *testing.T) {
	d := UnifiedDiff("/etc/x", []byte("a\nb"), []byte("a\nb\n"), true, true)
	if !strings.Contains(d, `\ No newline at end of file`) {
		t.Fatalf("diff does not show the missing newline:\n%s", d)
	}
	if d := UnifiedDiff("/etc/x", []byte{0, 1}, []byte{0, 2}, true, true); d != "Binary files differ\n" {
		t.Fatalf("binary diff = %q", d)
	}
}
