package ostreehost_test

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/ostreehost"
)

// fleet is a fleet (git http-backend, the distribution registry, a cosign
// signing key) whose images are bootable ostree test images with the agent's
// configuration baked in, as a real bootc image would carry it.
type fleet struct {
	*fleettest.Fleet
	base   map[string]string   // the base layer every image shares
	images map[string]v1.Image // by repository@digest
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	ostreehost.Require(t)
	f := &fleet{Fleet: fleettest.New(t, tools.Bin("bootsync")), images: map[string]v1.Image{}}
	pub, err := os.ReadFile(f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	f.base = map[string]string{
		"usr/lib/bootsync/fleet.pub": string(pub),
		"usr/lib/bootsync/config.yaml": fmt.Sprintf(`repo:
  url: %s
  ref: main
  allowHTTP: true
trust:
  signingKeys: [/usr/lib/bootsync/fleet.pub]
  requireSignatures: true
registry:
  insecure: [%s]
stateDir: /var/lib/bootsync
root: /
metrics:
  address: ""
`, f.URL, f.Registry.Addr()),
	}
	return f
}

// image builds, pushes and signs (unless unsigned) an image and returns
// repository@digest. health is what the image's health file says ("ok"
// passes the fleet's health check).
func (f *fleet) image(tag, health string, opts ostreehost.ImageOptions, signed bool) string {
	f.T.Helper()
	opts.Base = f.base
	if opts.Version == "" {
		opts.Version = tag
	}
	if opts.Files == nil {
		opts.Files = map[string]string{}
	}
	opts.Files["usr/lib/fakeos/health"] = health + "\n"
	img, err := ostreehost.BuildImage(opts)
	if err != nil {
		f.T.Fatal(err)
	}
	ref := f.Push(tag, img, signed)
	f.images[ref] = img
	return ref
}

// fleetYAML is a fleet.yaml for image with the given /etc entries (YAML
// list items) and a health check that reads the booted image's health
// file. update holds extra update policy lines.
func fleetYAML(image string, etc []string, update ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: bootsync.dev/v1alpha1\nkind: Fleet\nspec:\n  image: " + image + "\n")
	if len(etc) > 0 {
		b.WriteString("  etc:\n")
		for _, e := range etc {
			b.WriteString("    - " + e + "\n")
		}
	}
	b.WriteString(`  health:
    - {name: os-health, command: [/bin/sh, -c, "grep -qx ok /usr/lib/fakeos/health"], timeout: 5s, interval: 100ms, retries: 2}
  update:
    grace: 1s
`)
	if len(update) == 0 {
		update = []string{"reboot: immediate"}
	}
	for _, u := range update {
		b.WriteString("    " + u + "\n")
	}
	b.WriteString("policy:\n  requireSignatures: true\n")
	return b.String()
}

func file(path, content string) string {
	return fmt.Sprintf("{path: %s, content: %q}", path, content)
}

// host installs image on a new ostree host named name and boots it.
func (f *fleet) host(name, image string) *agentHost {
	f.T.Helper()
	h := ostreehost.New(f.T, ostreehost.Options{Tools: tools, Image: image, EnforceSigPolicy: true,
		Insecure: []string{f.Registry.Addr()},
		Etc:      map[string]string{"bootsync/config.yaml": "host:\n  name: " + name + "\n"}})
	return &agentHost{Host: h, name: name}
}

// agentHost is an ostree host running the real agent.
type agentHost struct {
	*ostreehost.Host
	name    string
	reboots int // reboots the agent started
}

// pass runs one `bootsync reconcile` in the host.
func (h *agentHost) pass(env ...string) ostreehost.Result {
	h.T.Helper()
	r := h.Exec(env, "bootsync", "reconcile")
	if r.Rebooted {
		h.reboots++
	}
	return r
}

func (h *agentHost) mustPass() {
	h.T.Helper()
	if r := h.pass(); r.Exit != 0 || r.Rebooted || r.Killed {
		h.T.Fatalf("pass on %s: %s", h.name, r)
	}
}

// converge runs passes until one ends converged, and returns the reboots
// the agent started on the way.
func (h *agentHost) converge(max int, env ...string) int {
	h.T.Helper()
	before := h.reboots
	var last ostreehost.Result
	for range max {
		last = h.pass(env...)
		if last.Rebooted || last.Exit != 0 {
			continue
		}
		if st := h.status(); st.LastPass != nil && st.LastPass.State == reconcile.StateConverged {
			return h.reboots - before
		}
	}
	h.T.Fatalf("%s did not converge in %d passes; last: %s\nstatus: %+v", h.name, max, last, h.status().LastPass)
	return 0
}

func (h *agentHost) status() *reconcile.Status {
	h.T.Helper()
	st, err := reconcile.NewStatusStore(h.VarPath("lib/bootsync")).Load()
	if err != nil || st == nil {
		h.T.Fatalf("status.json of %s: %v (nil: %v)", h.name, err, st == nil)
	}
	return st
}

func (h *agentHost) journal() *reconcile.Journal {
	h.T.Helper()
	j, err := reconcile.NewJournalStore(h.VarPath("lib/bootsync")).Load()
	if err != nil {
		h.T.Fatal(err)
	}
	return j
}

func (h *agentHost) booted() string {
	h.T.Helper()
	return h.Status().BootedDigest()
}

// verbs are the bootc calls that changed something, from index from on.
func (h *agentHost) verbs(from int) []string {
	h.T.Helper()
	var out []string
	for _, c := range h.Calls()[from:] {
		if len(c.Argv) > 0 && c.Argv[0] != "status" && c.Argv[0] != "--version" {
			out = append(out, strings.Join(c.Argv, " "))
		}
	}
	return out
}

// blobPaths are the registry paths of an image's config and layers.
func blobPaths(t *testing.T, f *fleet, ref string) []string {
	t.Helper()
	img := f.images[ref]
	var out []string
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, "/v2/os/base/blobs/"+cfg.String())
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "/v2/os/base/blobs/"+d.String())
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// withEtc is an image whose own layer ships etc (path relative to /etc →
// content).
func withEtc(etc map[string]string) ostreehost.ImageOptions {
	return ostreehost.ImageOptions{Etc: etc}
}

func (h *agentHost) mustPassWith(env ...string) {
	h.T.Helper()
	if r := h.pass(env...); r.Exit != 0 || r.Rebooted || r.Killed {
		h.T.Fatalf("pass on %s: %s", h.name, r)
	}
}
