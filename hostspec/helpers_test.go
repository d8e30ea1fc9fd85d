package hostspec

import (
	"context"
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// files builds an in-memory repository from path -> content.
func files(kv ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1]), Mode: 0o644}
	}
	return m
}

// with returns a copy of m with more files.
func with(m fstest.MapFS, kv ...string) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range files(kv...) {
		out[k] = v
	}
	return out
}

func mustLoad(t testing.TB, fsys fs.FS, opts ...LoadOption) *Repo {
	t.Helper()
	r, err := Load(context.Background(), fsys, opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return r
}

func mustResolve(t testing.TB, r *Repo, host string, extra map[string]string) *HostSpec {
	t.Helper()
	s, err := r.Resolve(context.Background(), host, extra)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", host, err)
	}
	return s
}

// lineOf returns the 1-based line of the first line of text containing
// marker, so tests do not hard-code line numbers of their fixtures.
func lineOf(t testing.TB, text, marker string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in fixture", marker)
	return 0
}

// colOf returns the 1-based column of marker on its line.
func colOf(t testing.TB, text, marker string) int {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, marker); i >= 0 {
			return i + 1
		}
	}
	t.Fatalf("marker %q not in fixture", marker)
	return 0
}

// problems extracts the ErrorList from err, failing when err is not one.
func problems(t testing.TB, err error) ErrorList {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want problems")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T (%v), want an ErrorList", err, err)
	}
	return list
}

// findProblem returns the problem in file at line whose field and message
// match, or fails listing what was found.
func findProblem(t testing.TB, err error, file string, line int, field, msgPart string) *Error {
	t.Helper()
	list := problems(t, err)
	for _, e := range list {
		if e.File == file && e.Line == line && e.Field == field && strings.Contains(e.Msg, msgPart) {
			text := e.Error()
			// The rendered message must carry the location, for humans.
			if !strings.Contains(text, file) || (line > 0 && !strings.Contains(text, ":"+itoa(line))) || (field != "" && !strings.Contains(text, field)) {
				t.Fatalf("rendered problem %q lacks file, line or field", text)
			}
			return e
		}
	}
	t.Fatalf("no problem at %s:%d field %q containing %q; got:\n%v", file, line, field, msgPart, list)
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

const header = "apiVersion: bootsync.dev/v1alpha1\n"

// exampleFleet is the fleet from the schema documentation.
const exampleFleet = header + `kind: Fleet
metadata: {name: prod}
spec:
  image: registry.example.com/os/base:stable
  etc:
    - from: files/common
    - path: /etc/motd
      content: "Welcome to {{ .Host.Name }}\n"
      template: true
      mode: "0644"
      owner: root
      group: root
    - path: /etc/old.conf
      absent: true
    - path: /etc/chrony.conf
      from: files/chrony.conf.tmpl
      template: true
      onChange: {restart: [chronyd.service], reload: [], reboot: false}
  vars: {ntp: pool.ntp.org, net: {dns: 10.0.0.1, domain: example.com}}
  health:
    - {name: sshd, systemd: sshd.service}
    - {name: api, http: "http://127.0.0.1:8080/healthz", expect: "ok", timeout: 5s, interval: 10s, retries: 3, required: true}
    - {name: db, tcp: "127.0.0.1:5432"}
    - {name: custom, command: ["/usr/bin/true"]}
    - {name: old, disabled: true}
  update:
    reboot: window
    windows: [{days: [sat, sun], start: "02:00", duration: 3h, timezone: Asia/Seoul}]
    fleetlock: {url: "https://fleetlock.example.com", group: default}
    paused: false
    grace: 5m
policy:
  registries: [registry.example.com/os]
  requireSignatures: true
`

const exampleCanary = header + `kind: Group
metadata: {name: canary}
selector: {hosts: ["edge-0*"], labels: {ring: "0"}}
priority: 10
spec:
  image: registry.example.com/os/base:next
  vars: {net: {dns: 10.9.9.9}}
  update: {reboot: immediate}
`

const exampleSeoul = header + `kind: Group
metadata: {name: seoul}
selector: {labels: {site: seoul}}
spec:
  vars: {ntp: ntp.seoul.example.com, dc: seoul}
  update: {grace: 10m}
  health:
    - {name: api, timeout: 30s}
`

const exampleWeb01 = header + `kind: Host
metadata: {name: web-01, labels: {role: web, site: seoul}}
spec:
  vars: {ip: 10.0.0.11}
  etc:
    - {path: /etc/NetworkManager/system-connections/eth0.nmconnection, from: files/nm/eth0.tmpl, template: true, mode: "0600"}
  health:
    - {name: db, systemd: postgresql.service}
`

func exampleRepo() fstest.MapFS {
	return files(
		"fleet.yaml", exampleFleet,
		"groups/canary.yaml", exampleCanary,
		"groups/seoul.yaml", exampleSeoul,
		"hosts/web-01.yaml", exampleWeb01,
		"files/common/chrony.conf", "pool {{ .Vars.ntp }}\n",
		"files/common/sysctl.d/10-net.conf", "net.ipv4.ip_forward = 0\n",
		"files/chrony.conf.tmpl", "server {{ .Vars.ntp }} iburst\n",
		"files/nm/eth0.tmpl", "[ipv4]\naddress1={{ .Vars.ip }}/24\ndns={{ .Vars.net.dns }}\n# {{ .Host.Labels.role }} bucket {{ .Host.Bucket }}\n",
	)
}
