package hostspec

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary fleet, group and host documents to Load,
// Validate and Resolve. Nothing may panic, and every problem must come
// back as an ErrorList whose entries name a file.
func FuzzLoad(f *testing.F) {
	f.Add(exampleFleet, exampleCanary, exampleWeb01)
	f.Add(exampleFleet, exampleSeoul, exampleWeb01)
	f.Add(minimalFleet, groupYAML("g", "selector: {bucket: \"0-9\"}\nspec:\n  vars: {a: {b: [1, 2.5, true, null]}}\n"), hostYAML("web-01", "spec:\n  vars: {a: {b: x}}\n"))
	f.Add(minimalFleet+"  etc:\n    - {path: /etc/t, content: \"{{ .Vars.x }}\", template: true}\n", groupYAML("g", "selector: {hosts: ['*']}\n"), hostYAML("web-01", "spec:\n  vars: {x: 1}\n"))
	f.Add(minimalFleet+"  etc:\n    - {path: /etc/t, content: \"{{ range .Vars.l }}{{ range $.Vars.l }}x{{ end }}{{ end }}\", template: true}\n", "", hostYAML("web-01", "spec:\n  vars: {l: [1, 2, 3]}\n"))
	f.Add("apiVersion: bootsync.dev/v2\nkind: Fleet\n", "kind: Group\n", "{")
	f.Add(minimalFleet+"  vars: &a {x: *a}\n", "---\n---\n", "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: other}\n")
	f.Add(minimalFleet+"  update:\n    reboot: window+fleetlock\n    windows: [{days: [mon], start: \"24:00\", duration: 0s}]\n", groupYAML("g", "selector: {}\npriority: 99999999999999999999\n"), hostYAML("web-01", "spec:\n  health:\n    - {name: x}\n"))
	f.Add(minimalFleet+"  etc:\n    - {path: /etc/a, absent: true}\n    - {path: /etc/a/b, content: x}\n", groupYAML("g", "selector: {hosts: ['[']}\n"), hostYAML("web-01", "spec:\n  etc:\n    - {path: /etc/../x, content: y}\n"))
	f.Add(minimalFleet, groupYAML("g", "selector: {labels: {a: b}}\n"), "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: web-01, labels: {a: b}}\nspec:\n  etc:\n    - {path: /etc/x, content: !!binary \"AAE=\"}\n")

	f.Fuzz(func(t *testing.T, fleet, group, host string) {
		fsys := fstest.MapFS{
			"fleet.yaml":        {Data: []byte(fleet)},
			"groups/g.yaml":     {Data: []byte(group)},
			"hosts/web-01.yaml": {Data: []byte(host)},
			"files/a.conf":      {Data: []byte("a {{ .Host.Name }}\n")},
			"files/dir/b.conf":  {Data: []byte("b\n"), Mode: 0o755},
			"files/escape":      {Data: []byte("../../x"), Mode: fs.ModeSymlink | 0o777},
			"bootsync.lock":     {Data: []byte("apiVersion: bootsync.dev/v1alpha1\nkind: Lock\nimages:\n  registry.example.com/os/base:stable: sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n")},
		}
		if group == "" { // fuzz repositories without groups too
			delete(fsys, "groups/g.yaml")
		}
		ctx := context.Background()
		r, err := Load(ctx, fsys)
		if err != nil {
			checkProblems(t, err)
			return
		}
		if err := r.Validate(ctx); err != nil {
			checkProblems(t, err)
		}
		for _, h := range []string{"web-01", "edge-07", "x"} {
			s, err := r.Resolve(ctx, h, map[string]string{"ring": "0"})
			if err != nil {
				checkProblems(t, err)
				continue
			}
			if s.Host != h || s.Provenance == nil || s.Vars == nil {
				t.Fatalf("incomplete spec for %s: %+v", h, s)
			}
		}
		_ = r.Images()
		_ = r.Lock().Encode()
	})
}

func checkProblems(t *testing.T, err error) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
	}
	for _, e := range list {
		if e.File == "" || e.Msg == "" {
			t.Fatalf("problem without file or message: %#v", e)
		}
	}
	_ = list.Error()
}
