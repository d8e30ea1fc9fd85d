package hostspec

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"unsafe"
)

// baselineFleet has hosts whose own layers change what their base's
// baseline holds in every way a layer can: a var mapping replaced by a
// leaf and a leaf by a mapping, an image with a digest over a locked one,
// a check disabled, retyped and newly typed, update keys, /etc entries
// that conflict with the base's or end a conflict within it.
func baselineFleet() map[string]string {
	return map[string]string{
		"fleet.yaml": header + `kind: Fleet
metadata: {name: f}
spec:
  image: registry.example.com/os/base:stable
  vars: {a: {b: 1, c: {d: 2}}, l: [1, 2], s: x}
  etc:
    - {path: /etc/a/b, content: "b\n"}
    - {path: /etc/x, content: "x\n"}
    - {path: /etc/p, content: "p\n"}
    - {path: /etc/p/q, absent: true}
    - {path: /etc/t, content: "{{ .Host.Name }} {{ .Vars.s }}\n", template: true}
  health:
    - {name: c1, systemd: a.service}
    - {name: c2, http: "http://127.0.0.1:1/", expect: ok, timeout: 5s}
    - {name: c3, tcp: "127.0.0.1:2"}
  update:
    reboot: window
    fleetlock: {url: "https://fl.example.com"}
policy:
  registries: [registry.example.com/os]
`,
		"groups/g.yaml": header + `kind: Group
metadata: {name: g}
selector: {labels: {k: v}}
spec:
  vars: {a: {c: {e: 3}}}
  etc:
    - {path: /etc/y, content: "y\n"}
  health:
    - {name: c1, retries: 4}
    - {name: c5, timeout: 9s}
  update:
    windows: [{days: [sat], start: "02:00", duration: 1h}]
`,
		"bootsync.lock": header + "kind: Lock\nimages:\n  registry.example.com/os/base:stable: " + digestA + "\n",
		"hosts/h1.yaml": header + `kind: Host
metadata: {name: h1, labels: {k: v}}
spec:
  image: registry.example.com/os/base@` + digestB + `
  vars: {a: z, s: {m: 1}}
  etc:
    - {path: /etc/a, absent: true}
    - {path: /etc/x/z, content: "z\n"}
  health:
    - {name: c1, disabled: true}
    - {name: c2, systemd: b.service}
    - {name: c5, tcp: "127.0.0.1:3"}
  update: {paused: true}
`,
		"hosts/h2.yaml": header + `kind: Host
metadata: {name: h2, labels: {k: v}}
spec:
  vars: {n: 1, a: {c: {f: 4}}}
  etc:
    - {path: /etc/a/b, content: "mine\n"}
    - {path: /etc/p, absent: true}
  health:
    - {name: c4, command: [/bin/true]}
`,
		"hosts/h3.yaml": header + `kind: Host
metadata: {name: h3}
spec:
  update: {reboot: immediate}
  etc:
    - {path: /etc/x, absent: true}
`,
		"hosts/h4.yaml": header + "kind: Host\nmetadata: {name: h4, labels: {k: v}}\n",
	}
}

// resolveAll resolves every host, and a host without a file, to JSON with
// their problems.
func resolveAll(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	repo := mustLoad(t, fsys)
	out := map[string]string{}
	for _, n := range append(repo.HostNames(), "nofile-1") {
		spec, err := repo.resolveSpec(context.Background(), n, nil)
		j, _ := json.Marshal(spec)
		out[n] = fmt.Sprintf("%s\n%v", j, err)
	}
	return out
}

// TestBaselineMatchesFinishingFromScratch resolves hosts from their base's
// baseline and from scratch: specs, provenance and problems must be the
// same.
func TestBaselineMatchesFinishingFromScratch(t *testing.T) {
	for name, fsys := range map[string]fs.FS{
		"baselineFleet": files(flatten(baselineFleet())...),
		"example":       exampleRepo(),
		"generated":     generated(t, 600, 50).MapFS(),
	} {
		shared := resolveAll(t, fsys)
		baselineSharing = false
		fresh := resolveAll(t, fsys)
		baselineSharing = true
		for h, want := range fresh {
			if shared[h] != want {
				t.Errorf("%s: host %s differs when finished from the baseline:\n%s\nfrom scratch:\n%s", name, h, shared[h], want)
			}
		}
	}
}

func flatten(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

// TestSetsNothingSeesEveryKey sets each key of an update patch in turn:
// setsNothing must notice each (a key added later and forgotten there
// would make hosts that set it get their base's policy).
func TestSetsNothingSeesEveryKey(t *testing.T) {
	if !(&updatePatch{}).setsNothing() {
		t.Fatal("the empty patch sets something")
	}
	typ := reflect.TypeFor[updatePatch]()
	for i := range typ.NumField() {
		var u updatePatch
		f := reflect.NewAt(typ.Field(i).Type, unsafe.Add(unsafe.Pointer(&u), typ.Field(i).Offset)).Elem()
		set := f.FieldByName("set")
		reflect.NewAt(set.Type(), unsafe.Pointer(set.UnsafeAddr())).Elem().SetBool(true)
		if u.setsNothing() {
			t.Errorf("setsNothing misses %s", typ.Field(i).Name)
		}
	}
}
