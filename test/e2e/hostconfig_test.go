package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/registrytest"
)

// copyToMirror copies os/base:tag and its cosign signature tag from the
// fleet's registry to mirror, as `skopeo copy` or a mirroring tool would.
func copyToMirror(t *testing.T, f *fleettest.Fleet, mirror *registrytest.Registry, tag, pinned string) {
	t.Helper()
	sigTag := strings.Replace(digestOf(pinned), ":", "-", 1) + ".sig"
	for _, tg := range []string{tag, sigTag} {
		src, err := name.NewTag(f.Registry.Addr()+"/os/base:"+tg, name.StrictValidation)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(src, remote.WithContext(t.Context()))
		if err != nil {
			t.Fatalf("read %s: %v", src, err)
		}
		dst, err := name.NewTag(mirror.Host+"/os/base:"+tg, name.StrictValidation)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, img, remote.WithContext(t.Context())); err != nil {
			t.Fatalf("write %s: %v", dst, err)
		}
	}
}

func registriesConf(primary, mirror, extra string) string {
	conf := "[[registry]]\nlocation = \"" + primary + "\"\n" + extra + "\n"
	if mirror != "" {
		conf += "[[registry.mirror]]\nlocation = \"" + mirror + "\"\ninsecure = true\n"
	}
	return conf
}

// A site whose primary registry is unreachable pulls through a mirror named
// in registries.conf (the mirror is the in-process registry, the primary
// Debian's distribution registry): `bootsync image verify`, `bootsync lock`
// and the agent all go through the mirror and say so; a digest-only mirror
// is never asked for a tag; a blocked registry gets no request at all.
func TestRegistriesConfMirrorsAndBlocks(t *testing.T) {
	f := newFleet(t)
	mirror := registrytest.New(t, false)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{Version: "2"}, true)
	copyToMirror(t, f, mirror, "v1", v1)
	copyToMirror(t, f, mirror, "v2", v2)
	primary := f.Registry.Addr()
	f.Commit("fleet on the v2 tag", map[string]string{"fleet.yaml": f.FleetYAML(f.TagRef("v2"), "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	confFile := filepath.Join(h.Sim.Root, "etc/containers/registries.conf")
	writeConf := func(conf string) { h.Sim.WriteRootFile(t, "etc/containers/registries.conf", []byte(conf), 0o644) }
	writeConf(registriesConf(primary, mirror.Host, ""))
	f.Registry.Down()
	mirrorRepo := mirror.Host + "/os/base"

	// image verify: resolved and verified through the mirror.
	r := h.Run(nil, "image", "verify", "--config", h.Config, f.TagRef("v2"))
	if r.Exit != 0 || !strings.Contains(r.Stdout, "image:    "+v2) || !strings.Contains(r.Stdout, "resolved: "+mirrorRepo) ||
		!strings.Contains(r.Stdout, "signature read from: "+mirrorRepo) {
		t.Fatalf("image verify through the mirror: %s", r)
	}

	checkLockThroughMirror(t, f, h, confFile, v2)

	// The agent: converges to v2, switched to the primary's name (bootc
	// applies its mirrors itself), and its status names the mirror.
	if reboots := h.Converge(5); reboots != 1 {
		t.Fatalf("converging through the mirror took %d reboots, want 1", reboots)
	}
	if h.Booted() != digestOf(v2) {
		t.Fatalf("booted %s, want v2", h.Booted())
	}
	if got := verbs(h.Calls()); !containsPrefix(got, "switch ") || !strings.HasSuffix(firstWithPrefix(got, "switch "), " "+v2) {
		t.Fatalf("bootc calls %q: want a switch to the primary's %s", got, v2)
	}
	st := h.Status()
	if st.Desired == nil || st.Desired.ResolvedFrom != mirrorRepo || st.Desired.SignatureFrom != mirrorRepo {
		t.Fatalf("status desired = %+v, want the mirror %s named", st.Desired, mirrorRepo)
	}
	if r := h.Run(nil, "status", "--config", h.Config); !regexp.MustCompile(`(?m)^resolved from: +` + regexp.QuoteMeta(mirrorRepo) + `$`).MatchString(r.Stdout) {
		t.Fatalf("bootsync status does not name the mirror:\n%s", r.Stdout)
	}

	// mirror-by-digest-only: a tag is never looked up on the mirror.
	writeConf(registriesConf(primary, mirror.Host, "mirror-by-digest-only = true"))
	mirror.Reset()
	r = h.Run(nil, "image", "verify", "--config", h.Config, f.TagRef("v2"))
	if r.Exit != 2 || !strings.Contains(r.Stderr, "digest references only") || !strings.Contains(r.Stderr, "primary "+primary+"/os/base") {
		t.Fatalf("a tag with a digest-only mirror: %s", r)
	}
	if got := mirror.Recorded(); len(got) != 0 {
		t.Fatalf("the digest-only mirror was asked for a tag: %v", got)
	}
	if r := h.Run(nil, "image", "verify", "--config", h.Config, v2); r.Exit != 0 || !strings.Contains(r.Stdout, "signature read from: "+mirrorRepo) {
		t.Fatalf("a digest with a digest-only mirror: %s", r)
	}

	// blocked: refused with its own reason, without any request.
	if err := f.Registry.Up(); err != nil {
		t.Fatal(err)
	}
	writeConf(registriesConf(primary, "", "blocked = true"))
	f.Registry.Reset()
	r = h.Run(nil, "image", "verify", "--config", h.Config, f.TagRef("v2"))
	if r.Exit != 2 || !strings.Contains(r.Stderr, ": blocked: registry "+primary+" is blocked in one of") {
		t.Fatalf("a blocked registry: %s", r)
	}
	f.Commit("fleet on the v1 tag", map[string]string{"fleet.yaml": f.FleetYAML(f.TagRef("v1"), "")})
	if p := h.Pass(); p.Exit == 0 || h.Status().LastError == nil || h.Status().LastError.Reason != "registry-blocked" {
		t.Fatalf("agent pass against a blocked registry: %s\nlast error %+v", p, h.Status().LastError)
	}
	if got := f.Registry.Requests(); len(got) != 0 {
		t.Fatalf("the blocked registry received requests: %v", got)
	}
	if h.Booted() != digestOf(v2) {
		t.Fatalf("the blocked pass changed the host: booted %s", h.Booted())
	}
}

// checkLockThroughMirror: lock pins the v2 tag through the mirror (the CLI
// reads the machine's registries.conf; CONTAINERS_REGISTRIES_CONF points
// at the host's).
func checkLockThroughMirror(t *testing.T, f *fleettest.Fleet, h *fleettest.Host, confFile, v2 string) {
	t.Helper()
	lockDir := t.TempDir()
	writeFile(t, filepath.Join(lockDir, "fleet.yaml"), f.FleetYAML(f.TagRef("v2"), ""))
	r := h.Run([]string{"CONTAINERS_REGISTRIES_CONF=" + confFile}, "lock", "--repo", lockDir)
	if r.Exit != 0 {
		t.Fatalf("lock through the mirror: %s", r)
	}
	if lock, _ := os.ReadFile(filepath.Join(lockDir, "bootsync.lock")); !strings.Contains(string(lock), f.TagRef("v2")+": "+digestOf(v2)) {
		t.Fatalf("bootsync.lock = %s, want %s pinned to %s", lock, f.TagRef("v2"), digestOf(v2))
	}
}

// A host whose containers policy requires sigstoreSigned with the fleet's
// key refuses, before staging anything, an image that bootsync's own gate
// accepts but bootc could not verify (signed only with a cosign v3
// bundle); once the image also carries a tag-based signature it goes in.
func TestHostPolicyRefusesBundleOnlyImageBeforeStaging(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	v2 := f.Image("v2", bootcsim.ImageOptions{Version: "2"}, false)
	if err := f.Signer.SignBundle(t.Context(), v2); err != nil {
		t.Fatal(err)
	}
	f.Commit("fleet on v2", map[string]string{"fleet.yaml": f.FleetYAML(v2, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	repo := f.Registry.Addr() + "/os/base"
	keyData, err := os.ReadFile(f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	h.Sim.WriteRootFile(t, "etc/pki/containers/fleet.pub", keyData, 0o644)
	policyJSON := `{"default": [{"type": "reject"}], "transports": {"docker": {"` + repo + `": [
  {"type": "sigstoreSigned", "keyPath": "` + filepath.Join(h.Sim.Root, "etc/pki/containers/fleet.pub") + `", "signedIdentity": {"type": "matchRepository"}}]}}}`
	h.Sim.WriteRootFile(t, "etc/containers/policy.json", []byte(policyJSON), 0o644)
	h.Sim.WriteRootFile(t, "etc/containers/registries.d/os.yaml", []byte("docker:\n  "+repo+":\n    use-sigstore-attachments: true\n"), 0o644)

	// image verify shows both verdicts.
	r := h.Run(nil, "image", "verify", "--config", h.Config, v2)
	if r.Exit != 1 || !strings.Contains(r.Stdout, "format:   "+policy.FormatBundle) || !strings.Contains(r.Stdout, "verdict:  accepted") ||
		!strings.Contains(r.Stdout, "host policy: refused\nreason:   host-policy") {
		t.Fatalf("image verify of a bundle-only image under a sigstoreSigned host policy: %s", r)
	}

	p := h.Pass()
	st := h.Status()
	if p.Exit == 0 || st.LastError == nil || st.LastError.Reason != policy.ReasonHostPolicy || !strings.Contains(st.LastError.Message, "policy.json") {
		t.Fatalf("pass with a bundle-only image: %s\nlast error %+v", p, st.LastError)
	}
	if got := verbs(h.Calls()); len(got) != 0 {
		t.Fatalf("bootc was asked to change the host: %q", got)
	}
	if _, ok := h.Etc("motd"); ok || h.Booted() != digestOf(v1) {
		t.Fatalf("the refused pass changed the host (motd written %v, booted %s)", ok, h.Booted())
	}
	if st.LastPass == nil || st.LastPass.State != reconcile.StateRefused {
		t.Fatalf("last pass %+v, want state refused", st.LastPass)
	}

	// Signed in cosign's tag format with the same key: both policies agree.
	if err := f.Signer.Sign(t.Context(), v2); err != nil {
		t.Fatal(err)
	}
	if reboots := h.Converge(5); reboots != 1 || h.Booted() != digestOf(v2) {
		t.Fatalf("after signing in the tag format: %d reboots, booted %s", reboots, h.Booted())
	}
	if d := h.Status().Desired; d == nil || !strings.Contains(d.HostPolicy, "accepted by "+filepath.Join(h.Sim.Root, "etc/containers/policy.json")) {
		t.Fatalf("status desired %+v, want the host policy's verdict", d)
	}
}

// bootc's own auto-updater competes with the agent: passes are refused
// (changing nothing) until it is masked, or agent.allowOtherUpdaters is set.
func TestOtherUpdaterRefusedUntilMasked(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	f.Commit("fleet on v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "")})
	h := f.NewHost("web-01", v1, hostOptions{})
	wants := filepath.Join(h.Sim.Root, "etc/systemd/system/timers.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/systemd/system/bootc-fetch-apply-updates.timer", filepath.Join(wants, "bootc-fetch-apply-updates.timer")); err != nil {
		t.Fatal(err)
	}

	p := h.Pass()
	st := h.Status()
	if p.Exit == 0 || st.LastError == nil || st.LastError.Reason != reconcile.ReasonOtherUpdater ||
		!strings.Contains(st.LastError.Message, "systemctl mask --now bootc-fetch-apply-updates.timer") ||
		len(st.OtherUpdaters) != 1 || st.OtherUpdaters[0] != "bootc-fetch-apply-updates.timer" {
		t.Fatalf("pass with the timer enabled: %s\nstatus: error %+v, other updaters %v", p, st.LastError, st.OtherUpdaters)
	}
	if _, ok := h.Etc("motd"); ok || len(verbs(h.Calls())) != 0 {
		t.Fatalf("a refused pass changed the host: motd written %v, bootc calls %q", ok, verbs(h.Calls()))
	}
	if r := h.Run(nil, "status", "--config", h.Config); !regexp.MustCompile(`(?m)^other updater: +bootc-fetch-apply-updates.timer is enabled$`).MatchString(r.Stdout) {
		t.Fatalf("bootsync status does not report the timer:\n%s", r.Stdout)
	}

	// Masked (what examples/bootc's Containerfile does): passes run.
	if err := os.Symlink("/dev/null", filepath.Join(h.Sim.Root, "etc/systemd/system/bootc-fetch-apply-updates.timer")); err != nil {
		t.Fatal(err)
	}
	h.MustPass()
	if got, _ := h.Etc("motd"); got != "web-01 is managed by bootsync\n" || len(h.Status().OtherUpdaters) != 0 {
		t.Fatalf("after masking: motd %q, other updaters %v", got, h.Status().OtherUpdaters)
	}

	// Or allowed explicitly: the pass runs and warns.
	h2 := f.NewHost("web-02", v1, hostOptions{ExtraConfig: "agent:\n  allowOtherUpdaters: true\n"})
	zwants := filepath.Join(h2.Sim.Root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(zwants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/systemd/system/zincati.service", filepath.Join(zwants, "zincati.service")); err != nil {
		t.Fatal(err)
	}
	h2.MustPass()
	if st := h2.Status(); len(st.OtherUpdaters) != 1 || !strings.Contains(strings.Join(st.Warnings, "\n"), "zincati.service enabled") {
		t.Fatalf("allowed other updater: other updaters %v, warnings %q", st.OtherUpdaters, st.Warnings)
	}
}

// A host file that names another machine's machine ID (a cloned disk) is
// refused on the host, changing nothing; the right machine applies it.
func TestMachineIDMismatchRefused(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	const want = "4f7a9c2e1b3d45e6a7b8c9d0e1f2a3b4"
	f.Commit("web-01 is one machine", map[string]string{
		"fleet.yaml":        f.FleetYAML(v1, ""),
		"hosts/web-01.yaml": "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata:\n  name: web-01\n  machineID: " + want + "\n",
	})
	h := f.NewHost("web-01", v1, hostOptions{Etc: map[string]string{"machine-id": "0123456789abcdef0123456789abcdef\n"}})

	p := h.Pass()
	st := h.Status()
	if p.Exit == 0 || st.LastError == nil || st.LastError.Reason != reconcile.ReasonMachineID ||
		!strings.Contains(st.LastError.Message, "names machine ID "+want) || !strings.Contains(st.LastError.Message, "hosts/web-01.yaml:5") {
		t.Fatalf("pass on another machine: %s\nlast error %+v", p, st.LastError)
	}
	if _, ok := h.Etc("motd"); ok || len(verbs(h.Calls())) != 0 {
		t.Fatalf("the refused pass changed the host")
	}
	h.Sim.WriteEtc(t, "machine-id", want+"\n")
	h.MustPass()
	if _, ok := h.Etc("motd"); !ok {
		t.Fatal("the right machine did not apply its spec")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func containsPrefix(list []string, prefix string) bool { return firstWithPrefix(list, prefix) != "" }

func firstWithPrefix(list []string, prefix string) string {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return s
		}
	}
	return ""
}
