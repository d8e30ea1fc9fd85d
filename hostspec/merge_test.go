package hostspec

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func findEtc(s *HostSpec, path string) (EtcFile, bool) {
	for _, f := range s.Etc {
		if f.Path == path {
			return f, true
		}
	}
	return EtcFile{}, false
}

func etcFile(t testing.TB, s *HostSpec, path string) EtcFile {
	t.Helper()
	f, ok := findEtc(s, path)
	if !ok {
		var have []string
		for _, f := range s.Etc {
			have = append(have, f.Path)
		}
		t.Fatalf("%s has no %s; has %v", s.Host, path, have)
	}
	return f
}

func healthCheck(t testing.TB, s *HostSpec, name string) HealthCheck {
	t.Helper()
	for _, h := range s.Health {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("%s has no health check %q", s.Host, name)
	return HealthCheck{}
}

// at returns the Source of the first line of file containing marker.
func at(t testing.TB, fsys fstest.MapFS, file, marker string) Source {
	t.Helper()
	return Source{File: file, Line: lineOf(t, string(fsys[file].Data), marker)}
}

// sameLine reports whether got points at want's file and line.
func sameLine(got, want Source) bool { return got.File == want.File && got.Line == want.Line }

// TestMergePrecedenceAndProvenance resolves the documented example and
// checks, value by value, what wins and where each value says it came
// from.
func TestMergePrecedenceAndProvenance(t *testing.T) {
	fsys := exampleRepo()
	r := mustLoad(t, fsys, WithRevision("0123abcd"))
	s := mustResolve(t, r, "web-01", map[string]string{"site": "busan", "rack": "r7"})

	if s.Revision != "0123abcd" || s.Host != "web-01" || s.Bucket != Bucket("web-01") {
		t.Errorf("header: %q %q %d", s.Revision, s.Host, s.Bucket)
	}
	// Labels: the repository file wins over local ones; local ones are added.
	if s.Labels["site"] != "seoul" || s.Labels["role"] != "web" || s.Labels["rack"] != "r7" {
		t.Errorf("labels = %v", s.Labels)
	}
	if !slices.Equal(s.Groups, []string{"seoul"}) {
		t.Errorf("groups = %v", s.Groups)
	}
	checkExampleProvenance(t, fsys, s)
	checkExampleValues(t, fsys, s)
	checkExampleHealth(t, fsys, s)
	checkExampleEtc(t, s)
}

// exampleProvenance says where each of web-01's values comes from: the
// first line of file containing marker, or the default where file is "".
var exampleProvenance = []struct{ key, file, marker string }{
	{"image", "fleet.yaml", "image: registry.example.com/os/base:stable"},
	{"vars.ntp", "groups/seoul.yaml", "ntp: ntp.seoul"},
	{"vars.dc", "groups/seoul.yaml", "dc: seoul"},
	{"vars.ip", "hosts/web-01.yaml", "ip: 10.0.0.11"},
	{"vars.net", "fleet.yaml", "vars: {ntp"},
	{"vars.net.dns", "fleet.yaml", "vars: {ntp"},
	{"update.reboot", "fleet.yaml", "reboot: window"},
	{"update.windows", "fleet.yaml", "windows:"},
	{"update.grace", "groups/seoul.yaml", "grace: 10m"},
	{"update.fleetlock.url", "fleet.yaml", "fleetlock:"},
	{"update.paused", "fleet.yaml", "paused: false"},
	{"update.maxDeferral", "", ""},
	{"update.softReboot", "", ""},
	{"policy.registries", "fleet.yaml", "registries:"},
	{"policy.requireSignatures", "fleet.yaml", "requireSignatures: true"},
	{"etc[/etc/chrony.conf]", "fleet.yaml", "- path: /etc/chrony.conf"},
	{"etc[/etc/motd]", "fleet.yaml", "- path: /etc/motd"},
	{"etc[/etc/sysctl.d/10-net.conf]", "fleet.yaml", "- from: files/common"},
	{"etc[/etc/NetworkManager/system-connections/eth0.nmconnection]", "hosts/web-01.yaml", "eth0.nmconnection"},
	{"health[api]", "fleet.yaml", "name: api"},
	{"health[api].http", "fleet.yaml", "name: api"},
	{"health[api].timeout", "groups/seoul.yaml", "timeout: 30s"},
	{"health[api].retries", "fleet.yaml", "name: api"},
	{"health[db]", "hosts/web-01.yaml", "name: db"},
	{"health[db].systemd", "hosts/web-01.yaml", "name: db"},
	{"health[sshd].timeout", "", ""},
	{"health[sshd].required", "", ""},
}

// checkExampleProvenance compares web-01's provenance with
// exampleProvenance, and checks it records nothing that is not in the spec.
func checkExampleProvenance(t *testing.T, fsys fstest.MapFS, s *HostSpec) {
	t.Helper()
	for _, c := range exampleProvenance {
		var want Source // the default's
		if c.file != "" {
			want = at(t, fsys, c.file, c.marker)
		}
		got, ok := s.Provenance[c.key]
		if !ok {
			t.Errorf("provenance has no %q", c.key)
			continue
		}
		if !sameLine(got, want) {
			t.Errorf("provenance[%q] = %v, want %v", c.key, got, want)
		}
	}
	for _, gone := range []string{"health[old]", "health[old].disabled", "health[db].tcp", "vars.net.domain.x", "etc[/etc/common]"} {
		if _, ok := s.Provenance[gone]; ok {
			t.Errorf("provenance has %q, which is not in the spec", gone)
		}
	}
	// The default's Source renders as "(default)".
	if got := s.Provenance["update.maxDeferral"].String(); got != "(default)" {
		t.Errorf("default source renders as %q", got)
	}
}

// checkExampleValues checks web-01's image, vars, update and policy.
func checkExampleValues(t *testing.T, fsys fstest.MapFS, s *HostSpec) {
	t.Helper()
	if s.Image.Ref != "registry.example.com/os/base:stable" || !sameLine(s.Image.Source, at(t, fsys, "fleet.yaml", "image: registry.example.com/os/base:stable")) {
		t.Errorf("image = %+v", s.Image)
	}
	if s.Vars["ntp"] != "ntp.seoul.example.com" || s.Vars["ip"] != "10.0.0.11" || s.Vars["dc"] != "seoul" {
		t.Errorf("vars = %v", s.Vars)
	}
	if net, _ := s.Vars["net"].(map[string]any); net["dns"] != "10.0.0.1" || net["domain"] != "example.com" {
		t.Errorf("vars.net = %v", s.Vars["net"])
	}
	u := s.Update
	if u.Reboot != RebootWindow || time.Duration(u.Grace) != 10*time.Minute || time.Duration(u.MaxDeferral) != DefaultMaxDeferral || u.Paused {
		t.Errorf("update = %+v", u)
	}
	if len(u.Windows) != 1 || !slices.Equal(u.Windows[0].Days, []string{"sat", "sun"}) || u.Windows[0].Start != "02:00" ||
		time.Duration(u.Windows[0].Duration) != 3*time.Hour || u.Windows[0].Timezone != "Asia/Seoul" {
		t.Errorf("windows = %+v", u.Windows)
	}
	if u.FleetLock == nil || u.FleetLock.URL != "https://fleetlock.example.com" || u.FleetLock.Group != "default" {
		t.Errorf("fleetlock = %+v", u.FleetLock)
	}
	if !s.Policy.RequireSignatures || !slices.Equal(s.Policy.Registries, []string{"registry.example.com/os"}) {
		t.Errorf("policy = %+v", s.Policy)
	}
}

// checkExampleHealth: checks merge by name, field by field; a new type
// replaces the old one; disabled checks are dropped; sorted by name.
func checkExampleHealth(t *testing.T, fsys fstest.MapFS, s *HostSpec) {
	t.Helper()
	var names []string
	for _, h := range s.Health {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"api", "custom", "db", "sshd"}) {
		t.Errorf("health checks = %v", names)
	}
	api := healthCheck(t, s, "api")
	if api.HTTP != "http://127.0.0.1:8080/healthz" || api.Expect != "ok" || time.Duration(api.Timeout) != 30*time.Second ||
		time.Duration(api.Interval) != 10*time.Second || api.Retries != 3 || !api.Required {
		t.Errorf("api = %+v", api)
	}
	db := healthCheck(t, s, "db")
	if db.Systemd != "postgresql.service" || db.TCP != "" || !sameLine(db.Source, at(t, fsys, "hosts/web-01.yaml", "name: db")) {
		t.Errorf("db = %+v", db)
	}
	sshd := healthCheck(t, s, "sshd")
	if time.Duration(sshd.Timeout) != DefaultCheckTimeout || sshd.Retries != DefaultCheckRetries || sshd.Required != DefaultCheckRequired {
		t.Errorf("sshd defaults = %+v", sshd)
	}
}

// checkExampleEtc: files are sorted by path; explicit entries beat a
// directory's file of the same layer; templates are rendered with the
// host's data.
func checkExampleEtc(t *testing.T, s *HostSpec) {
	t.Helper()
	var paths []string
	for _, f := range s.Etc {
		paths = append(paths, f.Path)
	}
	if !slices.IsSorted(paths) {
		t.Errorf("etc not sorted: %v", paths)
	}
	chrony := etcFile(t, s, "/etc/chrony.conf")
	if string(chrony.Content) != "server ntp.seoul.example.com iburst\n" || chrony.Source.From != "files/chrony.conf.tmpl" {
		t.Errorf("chrony = %q from %v", chrony.Content, chrony.Source)
	}
	if chrony.OnChange == nil || !slices.Equal(chrony.OnChange.Restart, []string{"chronyd.service"}) {
		t.Errorf("chrony onChange = %+v", chrony.OnChange)
	}
	sysctl := etcFile(t, s, "/etc/sysctl.d/10-net.conf")
	if sysctl.Source.From != "files/common/sysctl.d/10-net.conf" || sysctl.Mode != 0o644 || sysctl.Owner != "root" || sysctl.Group != "root" {
		t.Errorf("sysctl = %+v", sysctl)
	}
	nm := etcFile(t, s, "/etc/NetworkManager/system-connections/eth0.nmconnection")
	wantNM := "[ipv4]\naddress1=10.0.0.11/24\ndns=10.0.0.1\n# web bucket 90\n"
	if string(nm.Content) != wantNM || nm.Mode != 0o600 || nm.SHA256 != sha256Hex([]byte(wantNM)) {
		t.Errorf("nm keyfile = %q mode %s sha %s", nm.Content, nm.Mode, nm.SHA256)
	}
	old := etcFile(t, s, "/etc/old.conf")
	if !old.Absent || old.Content != nil || old.SHA256 != "" {
		t.Errorf("old.conf = %+v", old)
	}
	for _, f := range s.Etc {
		if !f.Absent && f.SHA256 != sha256Hex(f.Content) {
			t.Errorf("%s: SHA256 does not match content", f.Path)
		}
	}
}

// TestCanaryOverlay resolves a host picked by the canary group: the image
// and update.reboot come from the group, nested vars merge key by key.
func TestCanaryOverlay(t *testing.T) {
	fsys := exampleRepo()
	r := mustLoad(t, fsys)
	s := mustResolve(t, r, "edge-07", map[string]string{"ring": "0"})
	if s.Image.Ref != "registry.example.com/os/base:next" || !sameLine(s.Image.Source, at(t, fsys, "groups/canary.yaml", "image:")) {
		t.Errorf("image = %+v", s.Image)
	}
	net := s.Vars["net"].(map[string]any)
	if net["dns"] != "10.9.9.9" || net["domain"] != "example.com" {
		t.Errorf("vars.net = %v", net)
	}
	if !sameLine(s.Provenance["vars.net.dns"], at(t, fsys, "groups/canary.yaml", "dns: 10.9.9.9")) ||
		!sameLine(s.Provenance["vars.net.domain"], at(t, fsys, "fleet.yaml", "domain: example.com")) ||
		!sameLine(s.Provenance["vars.net"], at(t, fsys, "groups/canary.yaml", "dns: 10.9.9.9")) {
		t.Errorf("vars.net provenance: %v %v %v", s.Provenance["vars.net"], s.Provenance["vars.net.dns"], s.Provenance["vars.net.domain"])
	}
	// update merges key by key: reboot from the group, windows from the fleet.
	if s.Update.Reboot != RebootImmediate || len(s.Update.Windows) != 1 ||
		!sameLine(s.Provenance["update.reboot"], at(t, fsys, "groups/canary.yaml", "reboot: immediate")) {
		t.Errorf("update = %+v", s.Update)
	}
}

// TestReplacementRules checks what is replaced rather than merged: lists
// (windows, registries, command argv), scalars, and a map replaced by a
// scalar (whose nested provenance must go too).
func TestReplacementRules(t *testing.T) {
	fsys := files(
		"fleet.yaml", minimalFleet+`  vars:
    net: {dns: 10.0.0.1, domain: example.com}
    list: [a, b]
  health:
    - {name: c, command: [/usr/bin/check, --all], retries: 5}
    - {name: w, http: "http://127.0.0.1/health", expect: "ok"}
  update:
    reboot: window
    windows: [{days: [sat], start: "01:00", duration: 1h}, {days: [sun], start: "01:00", duration: 1h}]
    fleetlock: {url: "https://lock.example.com", group: fleet}
`,
		"hosts/h1.yaml", hostYAML("h1", `spec:
  vars:
    net: none
    list: [c]
  health:
    - {name: c, command: [/usr/bin/check]}
    - {name: w, tcp: "127.0.0.1:80"}
  update:
    windows: [{days: [wed], start: "03:00", duration: 2h}]
    fleetlock: {group: h1}
`),
	)
	r := mustLoad(t, fsys)
	s := mustResolve(t, r, "h1", nil)
	if s.Vars["net"] != "none" || !slices.Equal(s.Vars["list"].([]any), []any{"c"}) {
		t.Errorf("vars = %v", s.Vars)
	}
	for k := range s.Provenance {
		if strings.HasPrefix(k, "vars.net.") {
			t.Errorf("provenance keeps %q after vars.net became a scalar", k)
		}
	}
	c := healthCheck(t, s, "c")
	if !slices.Equal(c.Command, []string{"/usr/bin/check"}) || c.Retries != 5 {
		t.Errorf("check c = %+v (argv replaced, retries kept)", c)
	}
	w := healthCheck(t, s, "w")
	if w.TCP != "127.0.0.1:80" || w.HTTP != "" || w.Expect != "" {
		t.Errorf("check w = %+v (type replaced, expect dropped with http)", w)
	}
	if len(s.Update.Windows) != 1 || s.Update.Windows[0].Days[0] != "wed" || s.Update.Windows[0].Timezone != "UTC" {
		t.Errorf("windows = %+v", s.Update.Windows)
	}
	fl := s.Update.FleetLock
	if fl.URL != "https://lock.example.com" || fl.Group != "h1" ||
		!sameLine(s.Provenance["update.fleetlock.url"], at(t, fsys, "fleet.yaml", "fleetlock:")) ||
		!sameLine(s.Provenance["update.fleetlock.group"], at(t, fsys, "hosts/h1.yaml", "fleetlock:")) {
		t.Errorf("fleetlock = %+v (merged key by key)", fl)
	}
}

// TestWindowDefaults checks the normalization of windows: days default to
// every day, in week order, lower case.
func TestWindowDefaults(t *testing.T) {
	r := mustLoad(t, files("fleet.yaml", minimalFleet+"  update:\n    reboot: window\n    windows:\n      - {start: \"23:30\", duration: 90m}\n      - {days: [Sunday, MON], start: \"00:00\", duration: 1h, timezone: Europe/Berlin}\n"))
	s := mustResolve(t, r, "h1", nil)
	w := s.Update.Windows
	if !slices.Equal(w[0].Days, weekdays) || w[0].Timezone != "UTC" || time.Duration(w[0].Duration) != 90*time.Minute {
		t.Errorf("window 0 = %+v", w[0])
	}
	if !slices.Equal(w[1].Days, []string{"mon", "sun"}) || w[1].Timezone != "Europe/Berlin" {
		t.Errorf("window 1 = %+v", w[1])
	}
}

// TestAbsentEntries checks removing files: an absent entry at a higher
// layer replaces a file, and a higher layer can bring a file back.
func TestAbsentEntries(t *testing.T) {
	fsys := files(
		"fleet.yaml", minimalFleet+"  etc:\n    - {path: /etc/a.conf, content: a}\n    - {path: /etc/b.conf, absent: true, onChange: {restart: [b.service]}}\n",
		"groups/g.yaml", groupYAML("g", "selector: {hosts: ['h*']}\nspec:\n  etc:\n    - {path: /etc/a.conf, absent: true}\n"),
		"hosts/h2.yaml", hostYAML("h2", "spec:\n  etc:\n    - {path: /etc/a.conf, content: back}\n    - {path: /etc/b.conf, content: b}\n"),
	)
	r := mustLoad(t, fsys)
	h1 := mustResolve(t, r, "h1", nil)
	a := etcFile(t, h1, "/etc/a.conf")
	if !a.Absent || a.Content != nil || !sameLine(a.Source, at(t, fsys, "groups/g.yaml", "absent")) {
		t.Errorf("h1 a.conf = %+v", a)
	}
	b := etcFile(t, h1, "/etc/b.conf")
	if !b.Absent || b.OnChange == nil || b.OnChange.Restart[0] != "b.service" {
		t.Errorf("h1 b.conf = %+v", b)
	}
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"absent":true`) || strings.Contains(string(js), `"content"`) {
		t.Errorf("absent JSON = %s", js)
	}
	// Hosts the group does not select keep the file.
	other := mustResolve(t, r, "x1", nil)
	if f := etcFile(t, other, "/etc/a.conf"); f.Absent || string(f.Content) != "a" {
		t.Errorf("x1 a.conf = %+v", f)
	}
	h2 := mustResolve(t, r, "h2", nil)
	if f := etcFile(t, h2, "/etc/a.conf"); f.Absent || string(f.Content) != "back" {
		t.Errorf("h2 a.conf = %+v", f)
	}
	if f := etcFile(t, h2, "/etc/b.conf"); f.Absent || string(f.Content) != "b" || f.OnChange != nil {
		t.Errorf("h2 b.conf = %+v (an entry replaces the lower one entirely)", f)
	}
}

// TestDirectoryFrom checks directory expansion: files copied under /etc or
// under path:, nested directories, modes from the executable bit, mode and
// template applied to every file, and explicit entries winning.
func TestDirectoryFrom(t *testing.T) {
	fsys := files(
		"fleet.yaml", minimalFleet+`  vars: {name: fleet}
  etc:
    - from: files/common
    - path: /etc/app
      from: files/app
      template: true
      mode: "0640"
      owner: app
      group: "1000"
    - path: /etc/common.conf
      content: explicit
`,
		"files/common/common.conf", "from directory\n",
		"files/common/sub/dir/x.conf", "x\n",
		"files/app/app.conf", "name={{ .Vars.name }} host={{ .Host.Name }}\n",
		"files/app/conf.d/10.conf", "{{ .Host.Bucket }}\n",
	)
	fsys["files/common/bin/hook.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o755}
	r := mustLoad(t, fsys)
	s := mustResolve(t, r, "web-01", nil)
	var paths []string
	for _, f := range s.Etc {
		paths = append(paths, f.Path)
	}
	want := []string{"/etc/app/app.conf", "/etc/app/conf.d/10.conf", "/etc/bin/hook.sh", "/etc/common.conf", "/etc/sub/dir/x.conf"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths = %v, want %v", paths, want)
	}
	if f := etcFile(t, s, "/etc/bin/hook.sh"); f.Mode != 0o755 || f.Source.From != "files/common/bin/hook.sh" {
		t.Errorf("executable = %+v, want mode 0755", f)
	}
	if f := etcFile(t, s, "/etc/sub/dir/x.conf"); f.Mode != 0o644 || string(f.Content) != "x\n" {
		t.Errorf("x.conf = %+v", f)
	}
	if f := etcFile(t, s, "/etc/common.conf"); string(f.Content) != "explicit" || f.Source.From != "" {
		t.Errorf("common.conf = %+v, want the explicit entry", f)
	}
	app := etcFile(t, s, "/etc/app/app.conf")
	if string(app.Content) != "name=fleet host=web-01\n" || app.Mode != 0o640 || app.Owner != "app" || app.Group != "1000" {
		t.Errorf("app.conf = %+v %q", app, app.Content)
	}
	if f := etcFile(t, s, "/etc/app/conf.d/10.conf"); string(f.Content) != "90\n" {
		t.Errorf("10.conf = %q, want the bucket of web-01", f.Content)
	}
}

// TestTemplates checks the data templates see and that a template that
// reads a variable a host overrides is rendered for that host, even after
// another host rendered it (rendering is shared where it cannot differ).
func TestTemplates(t *testing.T) {
	fsys := files(
		"fleet.yaml", minimalFleet+`  vars: {dns: [10.0.0.53, 10.0.1.53], domain: example.com, nested: {a: {b: deep}}}
  etc:
    - {path: /etc/resolv.conf, from: files/resolv.tmpl, template: true}
    - {path: /etc/all, from: files/all.tmpl, template: true}
    - {path: /etc/raw, from: files/all.tmpl}
`,
		"files/resolv.tmpl", "{{ range .Vars.dns }}nameserver {{ . }}\n{{ end }}search {{ .Vars.domain }}\n",
		"files/all.tmpl", "{{ .Host.Name }} {{ .Host.Labels.role }} {{ .Host.Bucket }} {{ .Vars.nested.a.b }} {{ index .Host.Labels \"role\" }}\n",
		"hosts/h-own.yaml", header+"kind: Host\nmetadata: {name: h-own, labels: {role: db}}\nspec:\n  vars: {dns: [192.0.2.1]}\n",
		"hosts/h-plain.yaml", header+"kind: Host\nmetadata: {name: h-plain, labels: {role: web}}\nspec:\n  vars: {unrelated: 1}\n",
	)
	r := mustLoad(t, fsys)
	for _, order := range [][]string{{"h-plain", "h-own"}, {"h-own", "h-plain"}} {
		r := mustLoad(t, fsys)
		got := map[string]string{}
		for _, h := range order {
			got[h] = string(etcFile(t, mustResolve(t, r, h, nil), "/etc/resolv.conf").Content)
		}
		if got["h-plain"] != "nameserver 10.0.0.53\nnameserver 10.0.1.53\nsearch example.com\n" {
			t.Errorf("order %v: h-plain resolv.conf = %q", order, got["h-plain"])
		}
		if got["h-own"] != "nameserver 192.0.2.1\nsearch example.com\n" {
			t.Errorf("order %v: h-own resolv.conf = %q", order, got["h-own"])
		}
	}
	s := mustResolve(t, r, "h-own", nil)
	if all := string(etcFile(t, s, "/etc/all").Content); all != "h-own db "+itoa(Bucket("h-own"))+" deep db\n" {
		t.Errorf("all = %q", all)
	}
	if raw := string(etcFile(t, s, "/etc/raw").Content); !strings.Contains(raw, "{{ .Host.Name }}") {
		t.Errorf("a file without template: true was rendered: %q", raw)
	}
}

// TestTemplateSharingMatchesPerHostRendering renders every host of a
// generated fleet with and without shared rendering: the output must be
// identical, whatever order hosts are resolved in.
func TestTemplateSharingMatchesPerHostRendering(t *testing.T) {
	fsys := generated(t, 600, 50).MapFS()
	ctx := context.Background()
	shared := mustLoad(t, fsys)
	names := shared.HostNames()
	slices.Reverse(names)
	want := map[string]*HostSpec{}
	for _, n := range names {
		want[n] = mustResolve(t, shared, n, nil)
	}
	renderSharing = false
	t.Cleanup(func() { renderSharing = true })
	perHost := mustLoad(t, fsys)
	sharedCount := 0
	for _, n := range perHost.HostNames() {
		got, err := perHost.Resolve(ctx, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want[n])
		if string(a) != string(b) {
			t.Fatalf("host %s differs with shared rendering:\n%s\n%s", n, b, a)
		}
		sharedCount += len(got.Etc)
	}
	if sharedCount == 0 {
		t.Fatal("no files compared")
	}
}

// TestTemplateDependencies checks the analysis that decides which templates
// may be rendered once for many hosts.
func TestTemplateDependencies(t *testing.T) {
	for _, c := range []struct {
		text      string
		cacheable bool
		vars      []string
		all       bool
	}{
		{"static", true, nil, false},
		{"{{ .Vars.a }} {{ .Vars.b.c }}", true, []string{"a", "b"}, false},
		{"{{ range .Vars.list }}{{ . }}{{ .x }}{{ end }}", true, []string{"list"}, false},
		{"{{ range .Vars.list }}{{ $.Host.Name }}{{ end }}", false, nil, false},
		{"{{ with .Vars.x }}{{ . }}{{ else }}{{ .Host.Name }}{{ end }}", false, nil, false},
		{"{{ with .Vars.x }}{{ .Host }}{{ end }}", true, []string{"x"}, false},
		{"{{ .Host.Name }}", false, nil, false},
		{"{{ . }}", false, nil, false},
		{"{{ $x := . }}{{ $x.Vars.a }}", false, nil, false},
		{"{{ $x := .Vars.a }}{{ $x }}", true, []string{"a"}, false},
		{"{{ range $k, $v := .Vars }}{{ $k }}{{ end }}", true, nil, true},
		{"{{ index .Vars \"a\" }}", true, nil, true},
		{"{{ define \"x\" }}{{ .Host.Name }}{{ end }}{{ template \"x\" . }}", false, nil, false},
		{"{{ template \"y\" }}", false, nil, false},
		{"{{ if .Vars.on }}{{ .Host.Labels.x }}{{ end }}", false, nil, false},
		{"{{ printf \"%s\" (.Vars.a) }}", true, []string{"a"}, false},
		{"{{ (.Vars.m).k }}", true, []string{"m"}, false},
		{"{{ $ }}", false, nil, false},
	} {
		tm, perr := parseTemplate("t", "t", nil, []byte(c.text))
		if perr != nil {
			t.Fatalf("%q: %v", c.text, perr)
		}
		d := tm.deps
		var vars []string
		for k := range d.vars {
			vars = append(vars, k)
		}
		slices.Sort(vars)
		if d.cacheable != c.cacheable || (c.cacheable && (!slices.Equal(vars, c.vars) || d.allVars != c.all)) {
			t.Errorf("%q: deps = %+v, want cacheable=%v vars=%v all=%v", c.text, d, c.cacheable, c.vars, c.all)
		}
	}
}

// TestHostSpecJSON checks the documented JSON form: text content as a
// string, binary content as base64, modes and durations as strings.
func TestHostSpecJSON(t *testing.T) {
	fsys := files("fleet.yaml", minimalFleet+"  etc:\n    - {path: /etc/text, content: \"héllo\\n\"}\n    - {path: /etc/bin, content: !!binary \"AP8=\", mode: \"0600\"}\n  health:\n    - {name: s, systemd: s.service}\n")
	s := mustResolve(t, mustLoad(t, fsys), "h1", nil)
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"content":"héllo\n"`, `"contentBase64":"AP8="`, `"mode":"0600"`, `"timeout":"10s"`, `"grace":"5m0s"`, `"host":"h1"`, `"provenance":{`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
	if b := etcFile(t, s, "/etc/bin"); string(b.Content) != "\x00\xff" {
		t.Errorf("binary content = %q", b.Content)
	}
}

// TestSpecIsolation checks that changing one HostSpec's maps and slices
// does not change another host's or the Repo.
func TestSpecIsolation(t *testing.T) {
	r := mustLoad(t, exampleRepo())
	a := mustResolve(t, r, "web-01", nil)
	a.Vars["net"].(map[string]any)["dns"] = "changed"
	a.Labels["role"] = "changed"
	a.Policy.Registries[0] = "changed"
	a.Update.Windows[0].Days[0] = "changed"
	healthCheck(t, a, "custom").Command[0] = "changed"
	b := mustResolve(t, r, "web-01", nil)
	if b.Vars["net"].(map[string]any)["dns"] != "10.0.0.1" || b.Labels["role"] != "web" || b.Policy.Registries[0] != "registry.example.com/os" ||
		b.Update.Windows[0].Days[0] != "sat" || healthCheck(t, b, "custom").Command[0] != "/usr/bin/true" {
		t.Errorf("a change to one HostSpec leaked into the next: %+v", b)
	}
	if h, _ := r.Host("web-01"); h.Labels["role"] != "web" {
		t.Error("a change to a HostSpec leaked into the Repo")
	}
}

func TestWithRevisionValidates(t *testing.T) {
	for _, rev := range []string{"", "a b", "x\n"} {
		if _, err := Load(context.Background(), files("fleet.yaml", minimalFleet), WithRevision(rev)); err == nil || !strings.Contains(err.Error(), "WithRevision") {
			t.Errorf("WithRevision(%q): err = %v", rev, err)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, exampleRepo()); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Load with a cancelled context: %v", err)
	}
	r := mustLoad(t, exampleRepo())
	if _, err := r.Resolve(ctx, "web-01", nil); err == nil {
		t.Error("Resolve with a cancelled context succeeded")
	}
	if err := r.Validate(ctx); err == nil {
		t.Error("Validate with a cancelled context succeeded")
	}
}

var _ fs.FS = fstest.MapFS{}

// TestConcurrentResolve resolves the same hosts from many goroutines on a
// fresh Repo (so the shared caches fill concurrently) and compares with
// sequential results; run with -race.
func TestConcurrentResolve(t *testing.T) {
	fsys := generated(t, 200, 50).MapFS()
	seq := mustLoad(t, fsys)
	want := map[string]string{}
	for _, n := range seq.HostNames() {
		b, _ := json.Marshal(mustResolve(t, seq, n, nil))
		want[n] = string(b)
	}
	r := mustLoad(t, fsys)
	names := r.HostNames()
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range names {
				n := names[(i+g*25)%len(names)]
				s, err := r.Resolve(context.Background(), n, nil)
				if err != nil {
					errs <- err
					return
				}
				if b, _ := json.Marshal(s); string(b) != want[n] {
					errs <- fmt.Errorf("host %s differs when resolved concurrently", n)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
