package e2e

import (
	"crypto/elliptic"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
)

// ociFleet publishes the fleet's Git repository with the real `bootsync
// publish` to the real registry, and points hosts at it.
type ociFleet struct {
	*fleettest.Fleet
	t        *testing.T
	url      string // oci://…/ops/fleet:main
	key, pub string // the fleet signing key pair
}

func genKey(t *testing.T) (string, string) {
	t.Helper()
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), func(bool) ([]byte, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.key"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "fleet.key"), filepath.Join(dir, "fleet.pub")
}

// publish runs `bootsync publish` for HEAD of the fleet repository with
// key and returns the artifact's repository@digest.
func (f *ociFleet) publish(key string, extra ...string) string {
	f.t.Helper()
	args := append([]string{"publish", f.url, "--repo", f.Repo.Dir, "--key", key, "--insecure-registry", f.Registry.Addr()}, extra...)
	out, err := exec.CommandContext(f.t.Context(), f.Bootsync, args...).CombinedOutput()
	if err != nil {
		f.t.Fatalf("bootsync publish: %v\n%s", err, out)
	}
	fields := strings.Fields(string(out))
	return fields[len(fields)-1]
}

// host makes a host whose repo.url is the artifact, trusting pub.
func (f *ociFleet) host(name, image string) *fleettest.Host {
	f.t.Helper()
	h := f.NewHost(name, image, hostOptions{})
	cfg, err := os.ReadFile(h.Config)
	if err != nil {
		f.t.Fatal(err)
	}
	git := "  url: " + f.URL + "\n  ref: main\n  allowHTTP: true\n"
	if !strings.Contains(string(cfg), git) {
		f.t.Fatalf("test setup: the host config changed shape:\n%s", cfg)
	}
	s := strings.Replace(string(cfg), git, "  url: "+f.url+"\n", 1)
	s = strings.Replace(s, "trust:\n", "trust:\n  fleetKeys: ["+f.pub+"]\n", 1)
	if err := os.WriteFile(h.Config, []byte(s), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return h
}

// A host on oci:// converges on a merge, rolls back on a revert, polls
// with one registry request and no Git request, and refuses a re-pushed
// older artifact and one signed by another key with nothing changed.
func TestOCIHostConvergesRevertsAndRefusesOldOrForeignArtifacts(t *testing.T) {
	f := &ociFleet{Fleet: newFleet(t), t: t}
	f.url = "oci://" + f.Registry.Addr() + "/ops/fleet:main"
	f.key, f.pub = genKey(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{Version: "2"}, true)
	f.Commit("fleet on v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	f.publish(f.key)
	h := f.host("web-01", v1)
	h.MustPass()
	if got, _ := h.Etc("motd"); got != "web-01 is managed by bootsync\n" {
		t.Fatalf("/etc/motd from the artifact = %q", got)
	}

	// A no-change poll: one manifest HEAD at the registry, nothing at Git.
	f.Git.Reset()
	f.Registry.Reset()
	h.MustPass()
	// Each `bootsync reconcile` here is a new process, so its registry
	// client first asks GET /v2/ (the API version check go-containerregistry
	// makes once per client); a running agent keeps its client, and
	// TestPollCostsOneHeadAndVerifiesBeforeReading shows one HEAD there.
	var fleetReqs []string
	for _, r := range f.Registry.Requests() {
		if r.Path != "/v2/" {
			fleetReqs = append(fleetReqs, r.Method+" "+r.Path)
		}
	}
	if len(fleetReqs) != 1 || fleetReqs[0] != "HEAD /v2/ops/fleet/manifests/main" {
		t.Fatalf("a no-change oci:// pass made registry requests %v, want one manifest HEAD (besides GET /v2/)", f.Registry.Requests())
	}
	if n := f.Git.Count(); n != 0 {
		t.Fatalf("a no-change oci:// pass made %d Git requests", n)
	}

	// Merge + publish: the host moves to v2.
	f.Commit("fleet on v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, "")})
	onV2 := f.publish(f.key)
	if reboots := h.Converge(5); reboots != 1 || h.Booted() != digestOf(v2) {
		t.Fatalf("after publishing v2: %d reboots, booted %s, want 1 and %s", reboots, h.Booted(), digestOf(v2))
	}

	// Revert + publish: back to v1 with bootc rollback.
	f.Repo.Revert("HEAD")
	f.Repo.Push()
	f.publish(f.key)
	if reboots := h.Converge(5); reboots != 1 || h.Booted() != digestOf(v1) {
		t.Fatalf("after publishing the revert: %d reboots, booted %s, want 1 and %s", reboots, h.Booted(), digestOf(v1))
	}

	refused := func(what, reason string) {
		t.Helper()
		calls, boots := len(verbs(h.Calls())), h.Boots()
		r := h.Pass()
		if r.Exit == 0 || r.Killed {
			t.Fatalf("%s: the pass succeeded: %s", what, r)
		}
		st := h.Status()
		if st.LastError == nil || string(st.LastError.Reason) != reason {
			t.Fatalf("%s: last error %+v, want reason %s\n%s", what, st.LastError, reason, r)
		}
		if got := verbs(h.Calls()); len(got) != calls || h.Boots() != boots || h.Booted() != digestOf(v1) {
			t.Fatalf("%s changed the host: bootc calls %q, boots %d→%d, booted %s", what, got[calls:], boots, h.Boots(), h.Booted())
		}
	}

	// An attacker with registry write access re-pushes the older (signed)
	// v2 artifact to :main.
	retag(t, onV2, strings.TrimPrefix(f.url, "oci://"))
	refused("a re-pushed older artifact", "oci-rollback")

	// A newer commit published with a key the host does not trust.
	f.Commit("fleet on v2 again", map[string]string{"fleet.yaml": f.FleetYAML(v2, "reboot: immediate\n# foreign")})
	other, _ := genKey(t)
	f.publish(other)
	refused("an artifact signed by another key", "oci-bad-signature")
}

// retag points tag at the manifest src (repository@digest) names.
func retag(t *testing.T, src, tag string) {
	t.Helper()
	ref, err := name.ParseReference(src, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.NewTag(tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(dst, desc); err != nil {
		t.Fatal(err)
	}
}
