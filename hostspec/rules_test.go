package hostspec

import (
	"context"
	"strings"
	"testing"
)

// Characters that make text display as something else — bidi overrides,
// zero-width characters, control characters — are refused in paths,
// labels, URLs and file names expanded from a `from:` directory, naming
// file, line and field. Before, "/etc/\u202egnp.exe" validated and showed
// as "/etc/exe.png" in the PR comment.
func TestHiddenCharactersAreRefused(t *testing.T) {
	cases := []struct {
		name, file, marker, field, extra string
		files                            []string
	}{
		{name: "bidi override in a path", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path",
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: \"/etc/\\u202Egnp.exe\"\n      content: x\n"}},
		{name: "zero-width space in a path", file: "fleet.yaml", marker: "path:", field: "spec.etc[0].path",
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - path: \"/etc/mo\\u200Btd\"\n      content: x\n"}},
		{name: "isolate in a label", file: "hosts/web-01.yaml", marker: "labels", field: "metadata.labels.role",
			files: []string{"hosts/web-01.yaml", header + "kind: Host\nmetadata:\n  name: web-01\n  labels: {role: \"web\\u2066x\"}\n"}},
		{name: "override in a health URL", file: "fleet.yaml", marker: "http:", field: "spec.health[0].http",
			files: []string{"fleet.yaml", minimalFleet + "  health:\n    - name: a\n      http: \"http://127.0.0.1/\\u202E\"\n"}},
		{name: "override in a from directory's file name", file: "fleet.yaml", marker: "from:", field: "spec.etc[0].from", extra: "files/d/\u202egnp.exe",
			files: []string{"fleet.yaml", minimalFleet + "  etc:\n    - from: files/d\n      path: /etc/d\n", "files/d/\u202egnp.exe", "x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := with(files("fleet.yaml", minimalFleet, "hosts/web-01.yaml", hostYAML("web-01", "")), c.files...)
			_, err := Load(context.Background(), fsys)
			text := string(fsys[c.file].Data)
			e := findProblem(t, err, c.file, lineOf(t, text, c.marker), c.field, "invisible formatting character U+")
			if c.extra != "" && !strings.Contains(e.Msg, "file "+c.extra) {
				t.Fatalf("problem %q does not name the file %s", e.Msg, c.extra)
			}
		})
	}
}

// owner: "4294967295" is refused by validate exactly as the agent's /etc
// writer refuses it (it is chown's "unchanged"); 4294967294 is fine.
func TestNumericOwnerAndGroupLimit(t *testing.T) {
	fleet := minimalFleet + "  etc:\n    - {path: /etc/a, content: x, owner: \"4294967295\"}\n    - {path: /etc/b, content: x, group: \"4294967295\"}\n    - {path: /etc/c, content: x, owner: \"4294967294\", group: \"0\"}\n"
	_, err := Load(context.Background(), files("fleet.yaml", fleet))
	want := AccountIDProblem(1<<32 - 1)
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "/etc/a"), "spec.etc[0].owner", want)
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "/etc/b"), "spec.etc[1].group", want)
	if n := len(problems(t, err)); n != 2 {
		t.Fatalf("%d problems, want 2 (4294967294 is a valid id): %v", n, err)
	}
}

// Health-check timing has floors: interval: 1ns used to be accepted and
// would spin the check.
func TestHealthCheckTimingFloors(t *testing.T) {
	fleet := minimalFleet + "  health:\n    - {name: a, systemd: a.service, interval: 1ns}\n    - {name: b, systemd: b.service, timeout: 5ms}\n    - {name: c, systemd: c.service, interval: 100ms, timeout: 100ms}\n"
	_, err := Load(context.Background(), files("fleet.yaml", fleet))
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "name: a"), "spec.health[0].interval", "1ns is too short: at least 100ms")
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "name: b"), "spec.health[1].timeout", "5ms is too short: at least 100ms")
	if n := len(problems(t, err)); n != 2 {
		t.Fatalf("%d problems, want 2: %v", n, err)
	}
}

// {{index .Vars.m "missing"}} is an error naming the key, like
// {{.Vars.m.missing}}; before, it rendered "<no value>" into the file.
func TestTemplateIndexOfMissingKeyIsAnError(t *testing.T) {
	fleet := minimalFleet + `  vars: {m: {a: "1"}, list: [x, y]}
  etc:
    - {path: /etc/ok, template: true, content: "{{index .Vars.m \"a\"}} {{index .Vars.list 1}} {{index .Vars \"m\" \"a\"}}"}
    - {path: /etc/missing, template: true, content: "{{index .Vars.m \"missing\"}}"}
    - {path: /etc/range, template: true, content: "{{index .Vars.list 2}}"}
`
	r := mustLoad(t, files("fleet.yaml", fleet, "hosts/web-01.yaml", hostYAML("web-01", "")))
	_, err := r.Resolve(context.Background(), "web-01", nil)
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "/etc/missing"), "etc[/etc/missing]", `map has no entry for key "missing"`)
	findProblem(t, err, "fleet.yaml", lineOf(t, fleet, "/etc/range"), "etc[/etc/range]", "index out of range: 2")
	if n := len(problems(t, err)); n != 2 {
		t.Fatalf("%d problems, want 2: %v", n, err)
	}
	ok := mustResolve(t, mustLoad(t, files("fleet.yaml", strings.Split(fleet, "    - {path: /etc/missing")[0], "hosts/web-01.yaml", hostYAML("web-01", ""))), "web-01", nil)
	if got := string(ok.Etc[0].Content); got != "1 y 1" {
		t.Fatalf("index of present keys rendered %q, want %q", got, "1 y 1")
	}
}

// Image references follow the distribution grammar, without a transport:
// docker://registry.example.com/x:1 used to validate as a registry named
// "docker:".
func TestImageReferenceLookAlikes(t *testing.T) {
	for _, ref := range []string{"docker://registry.example.com/os/base:1", "docker:registry.example.com/os/base:1",
		"oci:/srv/images/base:1", "containers-storage:registry.example.com/os/base:1", "ostree-unverified-registry:registry.example.com/os/base:1"} {
		t.Run(ref, func(t *testing.T) {
			fleet := header + "kind: Fleet\nspec:\n  image: \"" + ref + "\"\n"
			_, err := Load(context.Background(), files("fleet.yaml", fleet))
			findProblem(t, err, "fleet.yaml", 4, "spec.image", "has the transport prefix")
			lock := header + "kind: Lock\nimages:\n  \"" + ref + "\": sha256:" + strings.Repeat("a", 64) + "\n"
			_, err = Load(context.Background(), files("fleet.yaml", minimalFleet, "bootsync.lock", lock))
			findProblem(t, err, "bootsync.lock", 4, "images["+ref+"]", "has the transport prefix")
		})
	}
	for _, ref := range []string{"registry.example.com/os/base:1", "localhost:5000/os/base:1", "127.0.0.1:5000/os/base:1",
		"registry.example.com/os/base@sha256:" + strings.Repeat("a", 64)} {
		if _, err := ParseImageReference(ref); err != nil {
			t.Errorf("ParseImageReference(%q) = %v, want valid", ref, err)
		}
	}
}

// Set-user-ID, set-group-ID and sticky bits are allowed but never silent:
// the repository reports them as warnings at the entry's file and line.
func TestSpecialModeBitsAreWarnings(t *testing.T) {
	fleet := minimalFleet + "  etc:\n    - {path: /etc/all, content: x, mode: \"7777\"}\n    - {path: /etc/suid, content: x, mode: \"4755\"}\n    - {path: /etc/plain, content: x, mode: \"0755\"}\n"
	r := mustLoad(t, files("fleet.yaml", fleet))
	ws := r.Warnings()
	if len(ws) != 2 {
		t.Fatalf("warnings = %v, want 2", ws)
	}
	findProblem(t, ws, "fleet.yaml", lineOf(t, fleet, "/etc/all"), "etc[/etc/all]", "warning: mode 7777 sets the set-user-ID, set-group-ID, sticky bit(s)")
	findProblem(t, ws, "fleet.yaml", lineOf(t, fleet, "/etc/suid"), "etc[/etc/suid]", "warning: mode 4755 sets the set-user-ID bit(s)")
}
