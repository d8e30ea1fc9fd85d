package hostspec

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const minimalFleet = header + `kind: Fleet
spec:
  image: registry.example.com/os/base:stable
`

func hostYAML(name, body string) string {
	return header + "kind: Host\nmetadata: {name: " + name + "}\n" + body
}

func groupYAML(name, body string) string {
	return header + "kind: Group\nmetadata: {name: " + name + "}\n" + body
}

// TestDecodeErrors covers every class of problem strict decoding must
// catch: each must name the file, the line (and column where the problem
// is one token) and the field.
func TestDecodeErrors(t *testing.T) {
	for _, c := range decodeErrorCases {
		t.Run(c.name, func(t *testing.T) {
			fsys := with(files("fleet.yaml", minimalFleet), c.files...)
			_, err := Load(context.Background(), fsys)
			content := string(fsys[c.file].Data)
			line := 0
			if c.marker != "" {
				line = lineOf(t, content, c.marker)
			}
			e := findProblem(t, err, c.file, line, c.field, c.msg)
			if c.col != "" {
				if want := colOf(t, strings.Split(content, "\n")[line-1], c.col); e.Column != want {
					t.Errorf("column = %d, want %d (%v)", e.Column, want, e)
				}
			}
		})
	}
}

// decodeErrorCase is one problem in a repository and where Load must say
// it is.
type decodeErrorCase struct {
	name   string
	files  []string // path, content pairs laid over a minimal valid repo
	file   string   // where the problem is
	marker string   // text on the problem's line; "" for no line
	col    string   // when set, the problem's column is where this text starts on that line
	field  string
	msg    string
}

// decodeErrorCases are TestDecodeErrors' cases, one a class of problem.
var decodeErrorCases = []decodeErrorCase{
	{name: "unknown top-level key", file: "fleet.yaml", marker: "spce:", col: "spce", field: "spce", msg: `unknown field "spce" (did you mean "spec"?)`,
		files: []string{"fleet.yaml", header + "kind: Fleet\nspce:\n  image: registry.example.com/os/base:stable\n"}},
	{name: "unknown nested key in etc entry", file: "hosts/web-01.yaml", marker: "mdoe", col: "mdoe", field: "spec.etc[1].mdoe", msg: `unknown field "mdoe" (did you mean "mode"?)`,
		files: []string{"hosts/web-01.yaml", hostYAML("web-01", "spec:\n  etc:\n  - {path: /etc/a, content: x}\n  - path: /etc/b\n    content: y\n    mdoe: \"0644\"\n")}},
	{name: "unknown key in window", file: "fleet.yaml", marker: "stat:", col: "stat", field: "spec.update.windows[0].stat", msg: `unknown field "stat"`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    reboot: window\n    windows:\n      - days: [sat]\n        stat: \"02:00\"\n"}},
	{name: "unknown key in health check", file: "fleet.yaml", marker: "timout", col: "timout", field: "spec.health[0].timout", msg: `unknown field "timout" (did you mean "timeout"?)`,
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - {name: a, systemd: a.service, timout: 5s}\n"}},
	{name: "unknown key in selector", file: "groups/g.yaml", marker: "label:", col: "label", field: "selector.label", msg: `unknown field "label"`,
		files: []string{"groups/g.yaml", groupYAML("g", "selector:\n  label: {a: b}\n")}},
	{name: "unknown key in metadata", file: "hosts/h1.yaml", marker: "lables", col: "lables", field: "metadata.lables", msg: `unknown field "lables" (did you mean "labels"?)`,
		files: []string{"hosts/h1.yaml", header + "kind: Host\nmetadata:\n  name: h1\n  lables: {a: b}\n"}},
	{name: "unknown key in policy", file: "fleet.yaml", marker: "requireSignature:", col: "requireSignature", field: "policy.requireSignature", msg: `did you mean "requireSignatures"`,
		files: []string{"fleet.yaml", minimalFleet + "policy:\n  requireSignature: true\n"}},
	{name: "unknown key in onChange", file: "fleet.yaml", marker: "restrat", col: "restrat", field: "spec.etc[0].onChange.restrat", msg: `unknown field "restrat"`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      content: x\n      onChange: {restrat: [a.service]}\n"}},
	{name: "unknown key in lock", file: "bootsync.lock", marker: "image:", col: "image", field: "image", msg: `unknown field "image" (did you mean "images"?)`,
		files: []string{"bootsync.lock", header + "kind: Lock\nimage: {}\n"}},
	{name: "policy in a group", file: "groups/g.yaml", marker: "policy:", field: "policy", msg: "policy is only allowed at the top level of fleet.yaml",
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: ['*']}\npolicy: {requireSignatures: false}\n")}},
	{name: "policy in a host", file: "hosts/h1.yaml", marker: "policy:", field: "policy", msg: "policy is only allowed at the top level of fleet.yaml",
		files: []string{"hosts/h1.yaml", hostYAML("h1", "policy: {registries: [evil.example.com]}\n")}},
	{name: "policy under spec", file: "fleet.yaml", marker: "policy:", field: "spec.policy", msg: "policy belongs at the top level of fleet.yaml, next to spec",
		files: []string{"fleet.yaml", minimalFleet + "  policy: {requireSignatures: true}\n"}},
	{name: "priority not an integer", file: "groups/g.yaml", marker: "priority:", col: "high", field: "priority", msg: `must be an integer, got the string "high"`,
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: ['*']}\npriority: high\n")}},
	{name: "vars not a mapping", file: "fleet.yaml", marker: "vars:", col: "[1]", field: "spec.vars", msg: "must be a mapping of names to values, got a list",
		files: []string{"fleet.yaml", minimalFleet + "  vars: [1]\n"}},
	{name: "unquoted mode", file: "fleet.yaml", marker: "mode:", col: "0644", field: "spec.etc[0].mode", msg: `quote it, as in mode: "0644"`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      content: x\n      mode: 0644\n"}},
	{name: "mode not octal", file: "fleet.yaml", marker: "mode:", field: "spec.etc[0].mode", msg: `mode "0999" is not an octal permission`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      content: x\n      mode: \"0999\"\n"}},
	{name: "boolean written as yes", file: "fleet.yaml", marker: "paused:", col: "yes", field: "spec.update.paused", msg: `must be true or false, got the string "yes"`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    paused: yes\n"}},
	{name: "labels not a mapping", file: "hosts/h1.yaml", marker: "labels:", field: "metadata.labels", msg: "must be a mapping, got a list",
		files: []string{"hosts/h1.yaml", header + "kind: Host\nmetadata:\n  name: h1\n  labels: [a, b]\n"}},
	{name: "hosts glob list given as a string", file: "groups/g.yaml", marker: "hosts:", field: "selector.hosts", msg: "must be a list",
		files: []string{"groups/g.yaml", groupYAML("g", "selector:\n  hosts: web-*\n")}},
	{name: "etc not a list", file: "fleet.yaml", marker: "etc:", field: "spec.etc", msg: "must be a list, got a mapping",
		files: []string{"fleet.yaml", minimalFleet + "  etc: {path: /etc/x}\n"}},
	{name: "duplicate key", file: "fleet.yaml", marker: "image: registry.example.com/os/base:other", col: "image", field: "spec.image", msg: `duplicate key "image" (first set at line 4)`,
		files: []string{"fleet.yaml", minimalFleet + "  image: registry.example.com/os/base:other\n"}},
	{name: "duplicate key in vars", file: "fleet.yaml", marker: "a: 2", col: "a: 2", field: "spec.vars.a", msg: `duplicate key "a"`,
		files: []string{"fleet.yaml", minimalFleet + "  vars:\n    a: 1\n    a: 2\n"}},
	{name: "duplicate host names", file: "hosts/z/web-01.yaml", marker: "name: web-01", field: "metadata.name", msg: "duplicate host \"web-01\": also defined in hosts/a/web-01.yaml",
		files: []string{
			"hosts/a/web-01.yaml", header + "kind: Host\nmetadata:\n  name: web-01\n",
			"hosts/z/web-01.yaml", header + "kind: Host\nmetadata:\n  name: web-01\n"}},
	{name: "host name differs from file name", file: "hosts/web-01.yaml", marker: "name: web-02", col: "web-02", field: "metadata.name", msg: `host name "web-02" does not match the file name`,
		files: []string{"hosts/web-01.yaml", header + "kind: Host\nmetadata:\n  name: web-02\n"}},
	{name: "duplicate group names", file: "groups/b.yaml", marker: "apiVersion", field: "metadata.name", msg: `duplicate group name "g": also defined in groups/a.yaml:1`,
		files: []string{"groups/a.yaml", groupYAML("g", "selector: {hosts: ['*']}\n"), "groups/b.yaml", groupYAML("g", "selector: {hosts: ['*']}\n")}},
	{name: "second Fleet document", file: "groups/x.yaml", marker: "kind: Fleet", col: "Fleet", field: "kind", msg: "a second Fleet document: the fleet is defined once, in fleet.yaml",
		files: []string{"groups/x.yaml", minimalFleet}},
	{name: "group without selector", file: "groups/g.yaml", marker: "apiVersion", field: "selector", msg: "a Group needs a selector",
		files: []string{"groups/g.yaml", groupYAML("g", "spec: {image: registry.example.com/os/base:next}\n")}},
	{name: "group with empty selector", file: "groups/g.yaml", marker: "selector:", field: "selector", msg: "empty selector",
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: []}\n")}},
	{name: "unknown apiVersion", file: "fleet.yaml", marker: "apiVersion", col: "bootsync.dev/v2", field: "apiVersion", msg: `unsupported version "bootsync.dev/v2": this build of bootsync supports only bootsync.dev/v1alpha1`,
		files: []string{"fleet.yaml", "apiVersion: bootsync.dev/v2\nkind: Fleet\n"}},
	{name: "missing apiVersion", file: "hosts/h1.yaml", marker: "kind: Host", field: "apiVersion", msg: "missing: add `apiVersion: bootsync.dev/v1alpha1`",
		files: []string{"hosts/h1.yaml", "kind: Host\nmetadata: {name: h1}\n"}},
	{name: "unknown kind", file: "hosts/h1.yaml", marker: "kind:", col: "Hots", field: "kind", msg: `unknown kind "Hots" (did you mean "Host"?)`,
		files: []string{"hosts/h1.yaml", header + "kind: Hots\nmetadata: {name: h1}\n"}},
	{name: "wrong kind for the directory", file: "hosts/h1.yaml", marker: "kind:", col: "Group", field: "kind", msg: "kind: Group does not belong in hosts/h1.yaml: Group documents live in groups/",
		files: []string{"hosts/h1.yaml", groupYAML("h1", "selector: {hosts: ['*']}\n")}},
	{name: "fleet.yaml holding a group", file: "fleet.yaml", marker: "kind:", field: "kind", msg: "fleet.yaml must hold the kind: Fleet document, found kind: Group",
		files: []string{"fleet.yaml", groupYAML("g", "selector: {hosts: ['*']}\n")}},
	{name: "invalid image reference", file: "fleet.yaml", marker: "image:", col: "Registry", field: "spec.image", msg: `invalid image reference "Registry.example.com/OS/base:stable"`,
		files: []string{"fleet.yaml", header + "kind: Fleet\nspec:\n  image: Registry.example.com/OS/base:stable\n"}},
	{name: "image without registry", file: "fleet.yaml", marker: "image:", field: "spec.image", msg: `invalid image reference "ubuntu:24.04"`,
		files: []string{"fleet.yaml", header + "kind: Fleet\nspec:\n  image: ubuntu:24.04\n"}},
	{name: "duration without unit", file: "fleet.yaml", marker: "grace:", col: "5", field: "spec.update.grace", msg: `invalid duration "5": want a Go duration like 30s, 5m or 1h30m (add a unit, like 5s)`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    grace: 5\n"}},
	{name: "negative duration", file: "fleet.yaml", marker: "timeout", field: "spec.health[0].timeout", msg: "duration must be positive",
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - {name: a, systemd: a.service, timeout: -5s}\n"}},
	{name: "invalid reboot strategy", file: "fleet.yaml", marker: "reboot:", col: "sometimes", field: "spec.update.reboot", msg: `invalid reboot strategy "sometimes": want immediate, window, fleetlock, window+fleetlock or manual`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    reboot: sometimes\n"}},
	{name: "invalid window day", file: "fleet.yaml", marker: "days:", col: "funday", field: "spec.update.windows[0].days[1]", msg: `invalid day "funday"`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    windows:\n      - {days: [sat, funday], start: \"02:00\", duration: 1h}\n"}},
	{name: "invalid window start", file: "fleet.yaml", marker: "start", field: "spec.update.windows[0].start", msg: `invalid start time "25:00"`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    windows:\n      - {start: \"25:00\", duration: 1h}\n"}},
	{name: "invalid window time zone", file: "fleet.yaml", marker: "timezone", field: "spec.update.windows[0].timezone", msg: `unknown time zone "Mars/Olympus_Mons"`,
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    windows:\n      - {start: \"02:00\", duration: 1h, timezone: Mars/Olympus_Mons}\n"}},
	{name: "window without duration", file: "fleet.yaml", marker: "- {start", field: "spec.update.windows[0].duration", msg: "missing",
		files: []string{"fleet.yaml", minimalFleet + "  update:\n    windows:\n      - {start: \"02:00\"}\n"}},
	{name: "bucket range reversed", file: "groups/g.yaml", marker: "bucket", col: "50-10", field: "selector.bucket", msg: `invalid bucket range "50-10"`,
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {bucket: 50-10}\n")}},
	{name: "bucket out of range", file: "groups/g.yaml", marker: "bucket", field: "selector.bucket", msg: `invalid bucket range "100"`,
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {bucket: 100}\n")}},
	{name: "bad host glob", file: "groups/g.yaml", marker: "hosts", field: "selector.hosts[0]", msg: `invalid host glob "web-["`,
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: [\"web-[\"]}\n")}},
	{name: "health check without a type", file: "fleet.yaml", marker: "- {name: a", field: "spec.health[0]", msg: `health check "a" has no type: set one of systemd, http, tcp, command`,
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - {name: a, timeout: 5s}\n"}},
	{name: "health check with two types", file: "fleet.yaml", marker: "- {name: a", field: "spec.health[0]", msg: `health check "a" has 2 types (systemd, tcp)`,
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - {name: a, systemd: a.service, tcp: \"127.0.0.1:1\"}\n"}},
	{name: "health check in a group with two types", file: "groups/g.yaml", marker: "- {name: a", field: "spec.health[0]", msg: "has 2 types",
		files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: ['*']}\nspec:\n  health:\n    - {name: a, http: \"http://127.0.0.1/\", command: [/bin/true]}\n")}},
	{name: "duplicate health check name", file: "fleet.yaml", marker: "- {name: a, tcp", field: "spec.health[1]", msg: `duplicate health check "a"`,
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - {name: a, systemd: a.service}\n    - {name: a, tcp: \"127.0.0.1:1\"}\n"}},
	{name: "etc path not normalized", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path", msg: `path "/etc//x" is not normalized: write "/etc/x"`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc//x\n      content: x\n"}},
	{name: "etc path with ..", file: "fleet.yaml", marker: "path:", col: "/etc/../shadow", field: "spec.etc[0].path", msg: "must not contain ..",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/../shadow\n      content: x\n"}},
	{name: "etc path outside /etc", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path", msg: `path "/usr/bin/x" is not under /etc`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /usr/bin/x\n      content: x\n"}},
	{name: "etc path lookalike outside /etc", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path", msg: `path "/etcetera" is not under /etc`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etcetera\n      content: x\n"}},
	{name: "etc path relative", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path", msg: "must be an absolute path under /etc",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: etc/x\n      content: x\n"}},
	{name: "etc path is /etc itself", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path", msg: "path /etc is the directory itself",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc\n      content: x\n"}},
	{name: "from escaping with ..", file: "fleet.yaml", marker: "from:", col: "../secrets", field: "spec.etc[0].from", msg: `from "../secrets" escapes the repository`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      from: ../secrets\n"}},
	{name: "from escaping in the middle", file: "fleet.yaml", marker: "from:", field: "spec.etc[0].from", msg: "escapes the repository",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      from: files/../../x\n"}},
	{name: "from absolute", file: "fleet.yaml", marker: "from:", field: "spec.etc[0].from", msg: `from "/etc/shadow" is absolute`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      from: /etc/shadow\n"}},
	{name: "from missing", file: "fleet.yaml", marker: "from:", field: "spec.etc[0].from", msg: `from "files/nope": no such file or directory in the repository`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      from: files/nope\n"}},
	{name: "from file without path", file: "fleet.yaml", marker: "- from", field: "spec.etc[0]", msg: `from "files/a.conf" is a file: set path:`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - from: files/a.conf\n", "files/a.conf", "a\n"}},
	{name: "content and from", file: "fleet.yaml", marker: "- path", field: "spec.etc[0]", msg: "content and from are both set",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      from: files/a.conf\n      content: x\n"}},
	{name: "neither content nor from", file: "fleet.yaml", marker: "- path", field: "spec.etc[0]", msg: "set content, from, or absent: true",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      mode: \"0600\"\n"}},
	{name: "absent with content", file: "fleet.yaml", marker: "- path", field: "spec.etc[0]", msg: "absent: true removes the file, so content cannot be set with it",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      absent: true\n      content: x\n"}},
	{name: "same path twice in one file", file: "fleet.yaml", marker: "- {path: /etc/x, content: b}", field: "spec.etc", msg: "path /etc/x is set twice in this file",
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - {path: /etc/x, content: a}\n    - {path: /etc/x, content: b}\n"}},
	{name: "YAML syntax error", file: "hosts/h1.yaml", marker: "labels: [a", field: "", msg: "YAML syntax error in the block that starts here: did not find expected ',' or ']'",
		files: []string{"hosts/h1.yaml", header + "kind: Host\nmetadata:\n  name: h1\n  labels: [a\nspec: {}\n"}},
	{name: "YAML syntax error on the first line", file: "hosts/h1.yaml", marker: "apiVersion", field: "", msg: "YAML syntax error: mapping values are not allowed",
		files: []string{"hosts/h1.yaml", "apiVersion: a: b\n"}},
	{name: "control character", file: "hosts/h1.yaml", marker: "metadata", col: "\x01", field: "", msg: "YAML syntax error: control characters are not allowed",
		files: []string{"hosts/h1.yaml", header + "kind: Host\nmetadata: {name: h1\x01}\n"}},
	{name: "two documents in one file", file: "hosts/h1.yaml", marker: "---", field: "", msg: "a second YAML document (after ---): each file must hold exactly one document",
		files: []string{"hosts/h1.yaml", hostYAML("h1", "") + "---\n" + groupYAML("g", "selector: {hosts: ['*']}\n")}},
	{name: "empty file", file: "hosts/h1.yaml", marker: "# nothing", field: "", msg: "file is empty",
		files: []string{"hosts/h1.yaml", "# nothing yet\n"}},
	{name: "YAML alias", file: "fleet.yaml", marker: "ntp2:", col: "*n", field: "spec.vars.ntp2", msg: "YAML aliases (*n) are not supported",
		files: []string{"fleet.yaml", minimalFleet + "  vars:\n    ntp: &n pool.ntp.org\n    ntp2: *n\n"}},
	{name: "yml extension", file: "hosts/h1.yml", marker: "", field: "", msg: "rename to .yaml",
		files: []string{"hosts/h1.yml", hostYAML("h1", "")}},
	{name: "invalid lock digest", file: "bootsync.lock", marker: "stable:", col: "sha256:abc", field: "images[registry.example.com/os/base:stable]", msg: `invalid digest "sha256:abc"`,
		files: []string{"bootsync.lock", header + "kind: Lock\nimages:\n  registry.example.com/os/base:stable: sha256:abc\n"}},
	{name: "invalid health URL", file: "fleet.yaml", marker: "http:", field: "spec.health[0].http", msg: `invalid URL "ftp://x/"`,
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - name: a\n      http: ftp://x/\n"}},
	{name: "relative health command", file: "fleet.yaml", marker: "command:", field: "spec.health[0].command", msg: `the program "true" must be an absolute path`,
		files: []string{"fleet.yaml", minimalFleet + "  health:\n    - name: a\n      command: [\"true\"]\n"}},
	{name: "invalid registry prefix", file: "fleet.yaml", marker: "registries:", field: "policy.registries[0]", msg: "must not have a scheme",
		files: []string{"fleet.yaml", minimalFleet + "policy:\n  registries: [\"https://registry.example.com/os\"]\n"}},
	{name: "invalid owner", file: "fleet.yaml", marker: "owner:", field: "spec.etc[0].owner", msg: `"root user" is not a user or group name`,
		files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/x\n      content: x\n      owner: root user\n"}},
	{name: "missing host name", file: "hosts/h1.yaml", marker: "apiVersion", field: "metadata.name", msg: "missing: every Host needs a name",
		files: []string{"hosts/h1.yaml", header + "kind: Host\nmetadata: {labels: {a: b}}\n"}},
}

// TestDecodeErrorsAreAllReported checks that one Load reports the problems
// of every file, sorted by file and line, not only the first.
func TestDecodeErrorsAreAllReported(t *testing.T) {
	fsys := files(
		"fleet.yaml", minimalFleet+"  update:\n    reboot: sometimes\n    grace: soon\n",
		"groups/a.yaml", groupYAML("a", "selector: {hosts: ['*']}\npriority: high\n"),
		"hosts/h1.yaml", hostYAML("h1", "spec:\n  etc:\n    - {path: /usr/x, content: x}\n    - {path: /etc/y, from: files/missing}\n"),
		"hosts/h2.yaml", hostYAML("h3", ""),
		// A wrong name is reported even in a file with other problems.
		"hosts/h4.yaml", hostYAML("h5", "spec:\n  imgae: x\n"),
	)
	_, err := Load(context.Background(), fsys)
	list := problems(t, err)
	want := []struct {
		file  string
		field string
	}{
		{"fleet.yaml", "spec.update.reboot"},
		{"fleet.yaml", "spec.update.grace"},
		{"groups/a.yaml", "priority"},
		{"hosts/h1.yaml", "spec.etc[0].path"},
		{"hosts/h1.yaml", "spec.etc[1].from"},
		{"hosts/h2.yaml", "metadata.name"},
		{"hosts/h4.yaml", "metadata.name"},
		{"hosts/h4.yaml", "spec.imgae"},
	}
	if len(list) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(list), len(want), list)
	}
	for i, w := range want {
		if list[i].File != w.file || list[i].Field != w.field {
			t.Errorf("problem %d = %v, want %s %s", i, list[i], w.file, w.field)
		}
	}
	// One problem per line in the rendered error.
	if n := strings.Count(err.Error(), "\n"); n != len(want)-1 {
		t.Errorf("rendered error has %d lines, want %d:\n%s", n+1, len(want), err)
	}
}

func TestMissingFleetFile(t *testing.T) {
	_, err := Load(context.Background(), files("hosts/h1.yaml", hostYAML("h1", "")))
	findProblem(t, err, "fleet.yaml", 0, "", "missing: a fleet repository needs fleet.yaml")
}

// TestResolveErrors covers problems that only show when a host's layers
// come together: each names the host and the place to fix.
func TestResolveErrors(t *testing.T) {
	type tc struct {
		name   string
		files  []string
		host   string
		file   string
		marker string
		field  string
		msg    string
	}
	cases := []tc{
		{name: "template missing key", host: "h1", file: "files/t.tmpl", marker: "{{ .Vars.nope }}", field: "etc[/etc/t]", msg: `map has no entry for key "nope"`,
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - {path: /etc/t, from: files/t.tmpl, template: true}\n", "files/t.tmpl", "ok\nvalue {{ .Vars.nope }}\n", "hosts/h1.yaml", hostYAML("h1", "")}},
		{name: "missing label in inline template", host: "h1", file: "fleet.yaml", marker: "Labels.role", field: "etc[/etc/motd]", msg: `map has no entry for key "role"`,
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: /etc/motd\n      template: true\n      content: \"role {{ .Host.Labels.role }}\\n\"\n", "hosts/h1.yaml", hostYAML("h1", "")}},
		{name: "no image", host: "h1", file: "hosts/h1.yaml", field: "spec.image", msg: "no image",
			files: []string{"fleet.yaml", header + "kind: Fleet\nspec: {}\n", "hosts/h1.yaml", hostYAML("h1", "")}},
		{name: "window strategy without windows", host: "h1", file: "groups/g.yaml", marker: "reboot: window", field: "update.reboot", msg: "reboot: window needs update.windows",
			files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: ['h*']}\nspec:\n  update:\n    reboot: window\n"), "hosts/h1.yaml", hostYAML("h1", "")}},
		{name: "fleetlock strategy without url", host: "h1", file: "hosts/h1.yaml", marker: "reboot", field: "update.reboot", msg: "reboot: fleetlock needs update.fleetlock.url",
			files: []string{"hosts/h1.yaml", hostYAML("h1", "spec:\n  update: {reboot: fleetlock}\n")}},
		{name: "health check typed nowhere", host: "h1", file: "groups/g.yaml", marker: "- {name: extra", field: "health[extra]", msg: `health check "extra" has no type in any layer`,
			files: []string{"groups/g.yaml", groupYAML("g", "selector: {hosts: ['h*']}\nspec:\n  health:\n    - {name: extra, timeout: 5s}\n"), "hosts/h1.yaml", hostYAML("h1", "")}},
		{name: "expect on a check that is no longer http", host: "h1", file: "hosts/h1.yaml", marker: "expect", field: "health[api].expect", msg: `expect only applies to http checks; "api" is a tcp check`,
			files: []string{"fleet.yaml", minimalFleet + "  health:\n    - {name: api, tcp: \"127.0.0.1:80\"}\n", "hosts/h1.yaml", hostYAML("h1", "spec:\n  health:\n    - {name: api, expect: ok}\n")}},
		{name: "file inside a file", host: "h1", file: "hosts/h1.yaml", marker: "/etc/a/b", field: "etc[/etc/a/b]", msg: "/etc/a/b is inside /etc/a, which is written as a file at fleet.yaml:6",
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - {path: /etc/a, content: x}\n", "hosts/h1.yaml", hostYAML("h1", "spec:\n  etc:\n    - {path: /etc/a/b, content: y}\n")}},
		{name: "file inside an absent path", host: "h1", file: "hosts/h1.yaml", marker: "/etc/a.d/b", field: "etc[/etc/a.d/b]", msg: "which is marked absent",
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - {path: /etc/a.d, absent: true}\n", "hosts/h1.yaml", hostYAML("h1", "spec:\n  etc:\n    - {path: /etc/a.d/b, content: y}\n")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := with(files("fleet.yaml", minimalFleet), c.files...)
			r := mustLoad(t, fsys)
			_, err := r.Resolve(context.Background(), c.host, nil)
			line := 0
			if c.marker != "" {
				line = lineOf(t, string(fsys[c.file].Data), c.marker)
			}
			e := findProblem(t, err, c.file, line, c.field, c.msg)
			if e.Host != c.host || !strings.Contains(e.Error(), "host "+c.host) {
				t.Errorf("problem %v does not name host %s", e, c.host)
			}
			// Validate reports the same problem.
			vErr := r.Validate(context.Background())
			findProblem(t, vErr, c.file, line, c.field, c.msg)
		})
	}
}

func TestTemplateParseErrorIsALoadError(t *testing.T) {
	fsys := files("fleet.yaml", minimalFleet+"  etc:\n    - {path: /etc/t, from: files/t.tmpl, template: true}\n    - path: /etc/u\n      template: true\n      content: |\n        line one\n        {{ end }}\n",
		"files/t.tmpl", "a\nb {{ if }}\n")
	_, err := Load(context.Background(), fsys)
	findProblem(t, err, "files/t.tmpl", 2, "", "missing value for if")
	findProblem(t, err, "fleet.yaml", lineOf(t, string(fsys["fleet.yaml"].Data), "{{ end }}"), "spec.etc[1].content", "template: unexpected {{end}}")
}

// TestVarsValues checks that vars keep their YAML types for templates and
// JSON, and that values JSON cannot carry are refused.
func TestVarsValues(t *testing.T) {
	fsys := files("fleet.yaml", minimalFleet+`  vars:
    port: 8080
    ratio: 0.5
    on: true
    none: null
    when: 2024-01-02
    text: "010"
    list: [1, a, {k: v}]
  etc:
    - path: /etc/v
      template: true
      content: "{{ .Vars.port }} {{ .Vars.ratio }} {{ .Vars.on }} {{ .Vars.none }} {{ .Vars.when }} {{ .Vars.text }} {{ index .Vars.list 2 }}"
`)
	s := mustResolve(t, mustLoad(t, fsys), "h1", nil)
	if got := string(etcFile(t, s, "/etc/v").Content); got != "8080 0.5 true <no value> 2024-01-02 010 map[k:v]" {
		t.Errorf("rendered %q", got)
	}
	js, _ := json.Marshal(s.Vars)
	if want := `{"list":[1,"a",{"k":"v"}],"none":null,"on":true,"port":8080,"ratio":0.5,"text":"010","when":"2024-01-02"}`; string(js) != want {
		t.Errorf("vars JSON = %s, want %s", js, want)
	}

	_, err := Load(context.Background(), files("fleet.yaml", minimalFleet+"  vars:\n    x: .inf\n    y: !custom z\n"))
	findProblem(t, err, "fleet.yaml", 6, "spec.vars.x", ".inf is not supported in vars")
	findProblem(t, err, "fleet.yaml", 7, "spec.vars.y", "unsupported YAML tag !custom")
}

// TestDuplicateKeysInLargeMappings checks duplicate detection in mappings
// too large to scan pairwise.
func TestDuplicateKeysInLargeMappings(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimalFleet + "  vars:\n")
	for i := range 100 {
		b.WriteString("    k" + itoa(i) + ": 1\n")
	}
	b.WriteString("    k42: 2\n")
	_, err := Load(context.Background(), files("fleet.yaml", b.String()))
	e := findProblem(t, err, "fleet.yaml", 106, "spec.vars.k42", `duplicate key "k42" (first set at line 48)`)
	var single *Error
	if !errors.As(err, &single) || single != e {
		t.Errorf("errors.As does not find the *Error in the list")
	}
}
