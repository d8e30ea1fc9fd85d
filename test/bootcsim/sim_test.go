package bootcsim_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/test/bootcsim"
)

func TestMain(m *testing.M) {
	code := m.Run()
	bootcsim.Cleanup()
	os.Exit(code)
}

const fixtureDir = "../../apply/bootc/testdata/bootc-status" // bootc's own fixtures, see SOURCES.md there

// A digest of an image that is not in any registry (the booted image of
// hosts made by `sim init`).
const initDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// setup starts a registry and a host booted into <registry>/os:stable
// (not pushed; upgrade pulls whatever the test pushes under that tag).
func setup(t *testing.T, opts bootcsim.Options) (*bootcsim.Registry, *bootcsim.Host) {
	t.Helper()
	reg := bootcsim.NewRegistry(t, bootcsim.RegistryOptions{})
	if opts.Image == "" {
		opts.Image = reg.Host + "/os:stable"
		opts.Digest = initDigest
	}
	opts.InsecureRegistries = append(opts.InsecureRegistries, reg.Host)
	return reg, bootcsim.NewHost(t, opts)
}

func wantExit(t *testing.T, r bootcsim.RunResult, code int, stderrPart string) {
	t.Helper()
	if r.ExitCode != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.ExitCode, code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, stderrPart) {
		t.Fatalf("stderr %q does not contain %q", r.Stderr, stderrPart)
	}
}

// lastCall is the most recent logged call of verb (status calls made by
// the test itself come after it).
func lastCall(t *testing.T, h *bootcsim.Host, verb string) bootcsim.Call {
	t.Helper()
	calls := h.Calls(t)
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Argv[0] == verb {
			return calls[i]
		}
	}
	t.Fatalf("no %s call logged in %+v", verb, calls)
	return bootcsim.Call{}
}

// The simulator's JSON must be byte-for-byte what the driver's model
// marshals back to in canonical form: nothing is lost or invented.
func TestStatusRoundTripsThroughDriverParser(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{ImageVersion: "41.1", Kernel: "6.8", SoftRebootTarget: true})
	check := func(stage string) {
		t.Helper()
		for _, args := range [][]string{
			{"status", "--format=json", "--format-version=1"},
			{"status", "--json"},
			{"status", "--format=json", "--booted"},
		} {
			out := h.MustRun(t, args...).Stdout
			if strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 0 {
				t.Fatalf("%s: %v: JSON is not one line without trailing newline: %q", stage, args, out)
			}
			canon, err := jsoncanonicalizer.Transform([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			if string(canon) != out {
				t.Fatalf("%s: %v: output is not RFC 8785 canonical\ngot:  %s\nwant: %s", stage, args, out, canon)
			}
			parsed, err := bootc.ParseStatus([]byte(out))
			if err != nil {
				t.Fatalf("%s: %v: %v", stage, args, err)
			}
			again, err := json.Marshal(parsed)
			if err != nil {
				t.Fatal(err)
			}
			again, err = jsoncanonicalizer.Transform(again)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != out {
				t.Fatalf("%s: %v: round trip differs\nsim:    %s\nparsed: %s", stage, args, out, again)
			}
		}
		// The default when stdout is not a terminal is YAML.
		yamlOut := h.MustRun(t, "status").Stdout
		fromYAML, err := bootc.ParseStatus([]byte(yamlOut))
		if err != nil {
			t.Fatalf("%s: YAML: %v\n%s", stage, err, yamlOut)
		}
		fromJSON := h.Status(t)
		if !reflect.DeepEqual(fromYAML, fromJSON) {
			t.Fatalf("%s: YAML and JSON status differ\nYAML: %+v\nJSON: %+v", stage, fromYAML, fromJSON)
		}
	}
	check("fresh host")
	img := bootcsim.Image(t, bootcsim.ImageOptions{Version: "41.2", Created: "2026-01-02T03:04:05.5Z", Kernel: "6.8"})
	ref := reg.Push(t, "os", "v2", img)
	h.MustRun(t, "switch", "--enforce-container-sigpolicy", ref)
	check("staged, signed")
	h.MustRun(t, "upgrade", "--check")
	h.Reboot(t)
	check("rebooted, with rollback")
	h.MustRun(t, "rollback")
	check("rollback queued")

	st := h.Status(t)
	if st.BootedDigest() != bootcsim.Digest(t, img) || st.RollbackDigest() != initDigest || !st.Status.RollbackQueued ||
		st.Spec.BootOrder != bootc.BootOrderRollback || !st.Spec.Image.EnforcesContainerPolicy() {
		t.Fatalf("unexpected status after rollback: %+v", st)
	}
	if *st.Status.Booted.Image.Version != "41.2" || *st.Status.Booted.Image.Timestamp != "2026-01-02T03:04:05.5Z" {
		t.Fatalf("version/timestamp not taken from labels: %+v", st.Status.Booted.Image)
	}
}

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %#v", v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// schemaProps returns the sorted property names of a $defs entry (or the
// top level for "").
func schemaProps(t *testing.T, schema map[string]any, def string) []string {
	t.Helper()
	node := schema
	if def != "" {
		node = schema["$defs"].(map[string]any)[def].(map[string]any)
	}
	return keysOf(t, node["properties"])
}

func without(keys []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return slices.Contains(drop, k) })
}

// The simulator prints exactly the keys of bootc's JSON Schema, except
// those bootc omits when empty (otherDeployments; metadata other than
// name), and every key the real fixtures use.
func TestStatusKeysMatchBootcSchemaAndFixtures(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{Version: "2"}))
	h.MustRun(t, "switch", ref)
	h.Reboot(t)
	ref3 := reg.Push(t, "os", "v3", bootcsim.Image(t, bootcsim.ImageOptions{Version: "3"}))
	h.MustRun(t, "switch", "--enforce-container-sigpolicy", ref3)
	h.MustRun(t, "upgrade", "--check") // fills booted.cachedUpdate
	var doc map[string]any
	if err := json.Unmarshal([]byte(h.MustRun(t, "status", "--format=json", "--format-version=1").Stdout), &doc); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(fixtureDir, "host-v1.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	status := doc["status"].(map[string]any)
	type pair struct {
		where string
		got   any
		def   string
		drop  []string
	}
	pairs := []pair{
		{"document", doc, "", nil},
		{"metadata", doc["metadata"], "ObjectMeta", []string{"annotations", "labels", "namespace"}},
		{"spec", doc["spec"], "HostSpec", nil},
		{"spec.image", doc["spec"].(map[string]any)["image"], "ImageReference", nil},
		{"status", status, "HostStatus", []string{"otherDeployments"}},
	}
	for _, e := range []string{"booted", "staged", "rollback"} {
		entry := status[e].(map[string]any)
		pairs = append(pairs,
			pair{e, entry, "BootEntry", nil},
			pair{e + ".image", entry["image"], "ImageStatus", nil},
			pair{e + ".ostree", entry["ostree"], "BootEntryOstree", nil},
		)
	}
	booted := status["booted"].(map[string]any)
	pairs = append(pairs,
		pair{"booted.cachedUpdate", booted["cachedUpdate"], "ImageStatus", nil},
		pair{"booted.image.image (unsigned)", booted["image"].(map[string]any)["image"], "ImageReference", []string{"signature"}},
	)
	for _, p := range pairs {
		if got, want := keysOf(t, p.got), without(schemaProps(t, schema, p.def), p.drop...); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: simulator keys %v, schema %s has %v", p.where, got, p.def, want)
		}
	}

	// Every key a current bootc fixture uses is one the simulator prints
	// at the same place (isContainer is obsolete, replaced by type).
	simKeys := map[string]bool{}
	collectKeys("", doc, simKeys)
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "spec-*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fixtureKeys := map[string]bool{}
		collectKeys("", yamlOrJSONKeys(t, data), fixtureKeys)
		for k := range fixtureKeys {
			// isContainer is obsolete (replaced by type); otherDeployments
			// (pinned deployments) and the inside of usrOverlay (set by
			// `bootc usr-overlay`) are not simulated.
			if strings.HasSuffix(k, ".isContainer") || strings.Contains(k, "otherDeployments") || strings.HasPrefix(k, "status.usrOverlay.") {
				continue
			}
			if !simKeys[k] {
				t.Errorf("%s uses %s, which the simulator never prints", filepath.Base(f), k)
			}
		}
	}
}

// collectKeys records dotted key paths, generalising booted/staged/rollback
// to "entry" so fixtures and simulator output compare by kind.
func collectKeys(prefix string, v any, out map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, child := range m {
		name := k
		if prefix == "status." && (k == "booted" || k == "staged" || k == "rollback") {
			name = "ENTRY"
		}
		if strings.HasSuffix(prefix, "ENTRY.") && k == "cachedUpdate" {
			name = "image"
		}
		p := prefix + name
		out[p] = true
		collectKeys(p+".", child, out)
	}
}

// yamlOrJSONKeys decodes a fixture generically (YAML is a superset of
// JSON); the !ostreeRemote tag decodes as a string, which is fine for key
// collection.
func yamlOrJSONKeys(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStatusFormatVersion(t *testing.T) {
	_, h := setup(t, bootcsim.Options{})
	h.MustRun(t, "status", "--format=json", "--format-version=0")
	wantExit(t, h.Run(t, "status", "--format=json", "--format-version=2"), 1, "error: Status: Unsupported format version: 2")
	wantExit(t, h.Run(t, "status", "--format=xml"), 2, "error: invalid value 'xml' for '--format <FORMAT>'")
}

// An older simulated bootc prints the keys it had then: a parser must not
// need softRebootCapable, downloadOnly, readOnly, usrOverlay, stateroot or
// architecture.
func TestOldVersionOmitsNewerKeys(t *testing.T) {
	_, h := setup(t, bootcsim.Options{Version: "1.1.6"})
	out := h.MustRun(t, "status", "--format=json", "--format-version=1").Stdout
	for _, key := range []string{"softRebootCapable", "downloadOnly", "readOnly", "usrOverlay", "stateroot", "architecture", "composefs"} {
		if strings.Contains(out, `"`+key+`"`) {
			t.Errorf("bootc 1.1.6 output contains %q: %s", key, out)
		}
	}
	for _, key := range []string{"rollbackQueued", "cachedUpdate", "store", "deploySerial", "imageDigest"} {
		if !strings.Contains(out, `"`+key+`"`) {
			t.Errorf("bootc 1.1.6 output lacks %q: %s", key, out)
		}
	}
	st, err := bootc.ParseStatus([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if st.BootedDigest() != initDigest || st.Status.Booted.SoftRebootCapable || st.Status.ReadOnly {
		t.Fatalf("unexpected parse of 1.1.6 output: %+v", st.Status.Booted)
	}
	if got := h.MustRun(t, "--version").Stdout; got != "bootc 1.1.6\n" {
		t.Fatalf("--version = %q", got)
	}
}

func TestNonBootcHost(t *testing.T) {
	h := bootcsim.NewHost(t, bootcsim.Options{})
	st := h.Status(t)
	if st.IsBootc() || st.Spec.Image != nil || st.Status.Type != nil {
		t.Fatalf("a host without a booted deployment reads as bootc: %+v", st)
	}
	wantExit(t, h.Run(t, "switch", "quay.io/a/b@"+initDigest), 1, "requires a booted host system")
	if lastCall(t, h, "switch").Pulled {
		t.Fatal("pulled on a non-bootc host")
	}
}

func TestSwitchStagesPlatformManifestOfIndex(t *testing.T) {
	reg := bootcsim.NewRegistry(t, bootcsim.RegistryOptions{})
	images := map[string]v1.Image{
		"amd64": bootcsim.Image(t, bootcsim.ImageOptions{Arch: "amd64", Version: "9.1", Created: "2026-02-03T04:05:06Z"}),
		"arm64": bootcsim.Image(t, bootcsim.ImageOptions{Arch: "arm64", Version: "9.1", Created: "2026-02-03T04:05:06Z"}),
	}
	ref := reg.PushIndex(t, "os", "9.1", bootcsim.Index(t, images["amd64"], images["arm64"]))
	for arch, img := range images {
		t.Run(arch, func(t *testing.T) {
			h := bootcsim.NewHost(t, bootcsim.Options{Image: reg.Host + "/os:old", Digest: initDigest, Arch: arch, InsecureRegistries: []string{reg.Host}})
			r := h.MustRun(t, "switch", ref)
			st := h.Status(t)
			wantDigest := bootcsim.Digest(t, img)
			if st.StagedDigest() != wantDigest {
				t.Fatalf("staged digest %s, want the %s manifest %s (not the index)", st.StagedDigest(), arch, wantDigest)
			}
			if got := st.Status.Staged.Architecture(); got != arch {
				t.Fatalf("staged architecture %q, want %q", got, arch)
			}
			wantOut := fmt.Sprintf("Queued for next boot: %s\n  Version: 9.1\n  Digest: %s\n", ref, wantDigest)
			if r.Stdout != wantOut {
				t.Fatalf("stdout %q, want %q", r.Stdout, wantOut)
			}
			if *st.Status.Staged.Image.Timestamp != "2026-02-03T04:05:06Z" {
				t.Fatalf("timestamp %q", *st.Status.Staged.Image.Timestamp)
			}
			if st.Spec.Image.Image != ref || st.Spec.Image.Signature != nil {
				t.Fatalf("spec.image = %+v, want the switched reference, unsigned", st.Spec.Image)
			}
			data, err := os.ReadFile(filepath.Join(h.Root, "run", "reboot-required"))
			if err != nil || string(data) != "bootc: Reboot required for image: "+wantDigest+"\n" {
				t.Fatalf("/run/reboot-required = %q, %v", data, err)
			}
			if c := lastCall(t, h, "switch"); !c.Pulled || c.Exit != 0 {
				t.Fatalf("call log entry %+v", c)
			}
			h.Reboot(t)
			if _, err := os.Stat(filepath.Join(h.Root, "run", "reboot-required")); !os.IsNotExist(err) {
				t.Fatalf("/run/reboot-required survived the reboot: %v", err)
			}
		})
	}
	h := bootcsim.NewHost(t, bootcsim.Options{Image: reg.Host + "/os:old", Digest: initDigest, Arch: "s390x", InsecureRegistries: []string{reg.Host}})
	wantExit(t, h.Run(t, "switch", ref), 1, "linux/s390x")
}

func TestSwitchToMissingImageFailsLikeBootc(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	wantExit(t, h.Run(t, "switch", reg.Host+"/nosuchrepo@sha256:"+strings.Repeat("0", 64)), 1, "NAME_UNKNOWN")
	reg.Push(t, "os", "v1", bootcsim.Image(t, bootcsim.ImageOptions{}))
	missing := reg.Host + "/os@sha256:" + strings.Repeat("0", 64)
	r := h.Run(t, "switch", missing)
	wantExit(t, r, 1, "error: Switching: Pulling: ")
	if !strings.Contains(r.Stderr, "MANIFEST_UNKNOWN") {
		t.Fatalf("stderr does not say the manifest is unknown: %s", r.Stderr)
	}
	if r.Stdout != "" {
		t.Fatalf("stdout on failure: %q", r.Stdout)
	}
	if st := h.Status(t); st.Status.Staged != nil {
		t.Fatalf("a failed switch staged %+v", st.Status.Staged)
	}
	if c := lastCall(t, h, "switch"); c.Exit != 1 || !c.Pulled {
		t.Fatalf("call log entry %+v", c.Exit)
	}
}

func TestSwitchUsesOstreeAuthFile(t *testing.T) {
	reg := bootcsim.NewRegistry(t, bootcsim.RegistryOptions{Username: "fleet", Password: "s3cret"})
	ref := reg.Push(t, "os", "v1", bootcsim.Image(t, bootcsim.ImageOptions{}))
	h := bootcsim.NewHost(t, bootcsim.Options{Image: reg.Host + "/os:old", Digest: initDigest, InsecureRegistries: []string{reg.Host}})

	r := h.Run(t, "switch", ref)
	wantExit(t, r, 1, "error: Switching: Pulling: ")
	if !strings.Contains(r.Stderr, "UNAUTHORIZED") {
		t.Fatalf("stderr does not report the auth failure: %s", r.Stderr)
	}
	wrong := *reg
	wrong.Password = "wrong"
	h.WriteRootFile(t, "etc/ostree/auth.json", wrong.AuthJSON(), 0o600)
	wantExit(t, h.Run(t, "switch", ref), 1, "UNAUTHORIZED")

	h.WriteRootFile(t, "etc/ostree/auth.json", reg.AuthJSON(), 0o600)
	h.MustRun(t, "switch", ref)
	if got := h.Status(t).StagedDigest(); !strings.HasSuffix(ref, got) {
		t.Fatalf("staged %s, want %s", got, ref)
	}
}

func TestPlainHTTPNeedsInsecureRegistry(t *testing.T) {
	reg := bootcsim.NewRegistry(t, bootcsim.RegistryOptions{})
	ref := reg.Push(t, "os", "v1", bootcsim.Image(t, bootcsim.ImageOptions{}))
	h := bootcsim.NewHost(t, bootcsim.Options{Image: reg.Host + "/os:old", Digest: initDigest})
	r := h.Run(t, "switch", ref)
	wantExit(t, r, 1, "error: Switching: Pulling: ")
	if !strings.Contains(r.Stderr, "not configured as an insecure registry") {
		t.Fatalf("stderr does not explain the refused plain HTTP: %s", r.Stderr)
	}
}

func TestSwitchToSameSpecIsUnchangedWithoutPulling(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	h.MustRun(t, "switch", ref)
	r := h.MustRun(t, "switch", ref)
	if r.Stdout != "Image specification is unchanged.\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	if c := lastCall(t, h, "switch"); c.Pulled {
		t.Fatal("an unchanged switch pulled")
	}
	// The signature is part of the spec: enforcing it is a change.
	r = h.MustRun(t, "switch", "--enforce-container-sigpolicy", ref)
	if !strings.HasPrefix(r.Stdout, "Queued for next boot: ostree-image-signed:docker://"+ref+"\n") {
		t.Fatalf("stdout %q", r.Stdout)
	}
	// ...and switching without the flag silently drops enforcement,
	// which is why bootsync passes it on every switch.
	h.MustRun(t, "switch", ref)
	if h.Status(t).Spec.Image.EnforcesContainerPolicy() {
		t.Fatal("switch without --enforce-container-sigpolicy kept enforcement")
	}
}

func TestSwitchApplyOnUnchangedSpecRebootsIntoStaged(t *testing.T) {
	for _, tc := range []struct {
		version string
		reboots bool
	}{{"1.16.3", true}, {"1.16.2", false}} {
		t.Run(tc.version, func(t *testing.T) {
			reg, h := setup(t, bootcsim.Options{Version: tc.version})
			img := bootcsim.Image(t, bootcsim.ImageOptions{})
			ref := reg.Push(t, "os", "v2", img)
			h.MustRun(t, "switch", ref)
			r := h.Run(t, "switch", "--apply", ref)
			if r.Stdout != "Image specification is unchanged.\n" {
				t.Fatalf("stdout %q", r.Stdout)
			}
			if r.Killed != tc.reboots {
				t.Fatalf("killed = %v, want %v (exit %d, stderr %s)", r.Killed, tc.reboots, r.ExitCode, r.Stderr)
			}
			booted := h.Status(t).BootedDigest()
			if want := map[bool]string{true: bootcsim.Digest(t, img), false: initDigest}[tc.reboots]; booted != want {
				t.Fatalf("booted %s, want %s", booted, want)
			}
		})
	}
}

func TestApplyKillsItselfAndOptionallyItsCaller(t *testing.T) {
	for _, killParent := range []bool{false, true} {
		t.Run(fmt.Sprintf("killParent=%v", killParent), func(t *testing.T) {
			reg, h := setup(t, bootcsim.Options{KillParent: killParent})
			img := bootcsim.Image(t, bootcsim.ImageOptions{})
			ref := reg.Push(t, "os", "v2", img)
			// The shell stands in for the agent that runs bootc.
			cmd := exec.Command("/bin/sh", "-c", `bootc switch --apply "$1"; echo "survived $?"`, "sh", ref)
			cmd.Env = h.Env()
			out, err := cmd.Output()
			if killParent {
				var exitErr *exec.ExitError
				if !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 || !strings.Contains(exitErr.String(), "killed") {
					t.Fatalf("caller was not killed: err=%v out=%q", err, out)
				}
				if strings.Contains(string(out), "survived") {
					t.Fatalf("caller kept running: %q", out)
				}
			} else {
				if err != nil {
					t.Fatalf("caller failed: %v", err)
				}
				if !strings.Contains(string(out), "survived 137") {
					t.Fatalf("bootc did not die by SIGKILL: %q", out)
				}
			}
			if !strings.Contains(string(out), "Queued for next boot: "+ref) {
				t.Fatalf("stdout before the reboot was lost: %q", out)
			}
			if got := h.Status(t).BootedDigest(); got != bootcsim.Digest(t, img) {
				t.Fatalf("booted %s after --apply, want the new image", got)
			}
			c := lastCall(t, h, "switch")
			if !c.Rebooted || c.Exit != 137 || !c.Pulled {
				t.Fatalf("call log entry %+v", c)
			}
		})
	}
}

func TestRollbackTogglesAndDiscardsStaged(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	b := reg.Push(t, "os", "b", bootcsim.Image(t, bootcsim.ImageOptions{Marker: "b"}))
	c := reg.Push(t, "os", "c", bootcsim.Image(t, bootcsim.ImageOptions{Marker: "c"}))

	wantExit(t, h.Run(t, "rollback"), 1, "error: No rollback available")

	h.MustRun(t, "switch", b)
	h.Reboot(t)
	h.MustRun(t, "switch", c)
	bDigest := h.Status(t).BootedDigest()
	calls := len(h.Calls(t))

	if r := h.MustRun(t, "rollback"); r.Stdout != "Next boot: rollback deployment\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	st := h.Status(t)
	if !st.Status.RollbackQueued || st.Spec.BootOrder != bootc.BootOrderRollback || st.Status.Staged != nil ||
		st.BootedDigest() != bDigest || st.RollbackDigest() != initDigest {
		t.Fatalf("after rollback: %+v", st.Status)
	}
	if st.Spec.Image.Image != b {
		t.Fatalf("spec.image %q, want the booted image once staged is discarded", st.Spec.Image.Image)
	}

	if r := h.MustRun(t, "rollback"); r.Stdout != "notice: Reverting queued rollback state\nNext boot: current deployment\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	if st := h.Status(t); st.Status.RollbackQueued || st.Spec.BootOrder != bootc.BootOrderDefault {
		t.Fatalf("after revert: %+v", st.Status)
	}

	h.MustRun(t, "rollback")
	h.Reboot(t)
	st = h.Status(t)
	if st.BootedDigest() != initDigest || st.RollbackDigest() != bDigest || st.Status.RollbackQueued {
		t.Fatalf("after rebooting into the rollback: booted %s rollback %s queued %v", st.BootedDigest(), st.RollbackDigest(), st.Status.RollbackQueued)
	}
	for _, call := range h.Calls(t)[calls:] {
		if call.Pulled {
			t.Fatalf("%v pulled from the registry", call.Argv)
		}
	}
}

// /etc: finalizing a staged deployment carries the live /etc over (3-way
// merge with the image's defaults); a rollback boots the /etc that
// deployment had.
func TestEtcCarriedOnFinalizeNotOnRollback(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{Etc: map[string]string{"motd": "local motd\n", "ntp.conf": "local ntp\n"}})
	imgB := bootcsim.Image(t, bootcsim.ImageOptions{Marker: "b", Etc: map[string]string{
		"motd": "image motd\n", "chrony.conf": "chrony from B\n", "issue": "issue from B\n",
	}})
	imgC := bootcsim.Image(t, bootcsim.ImageOptions{Marker: "c", Etc: map[string]string{
		"motd": "image motd C\n", "chrony.conf": "chrony from C\n",
	}})
	want := func(stage string, files map[string]string) {
		t.Helper()
		for rel, content := range files {
			got, ok := h.ReadEtc(t, rel)
			switch {
			case content == "" && ok:
				t.Errorf("%s: /etc/%s exists (%q), want it absent", stage, rel, got)
			case content != "" && got != content:
				t.Errorf("%s: /etc/%s = %q (exists %v), want %q", stage, rel, got, ok, content)
			}
		}
	}

	h.MustRun(t, "switch", reg.Push(t, "os", "b", imgB))
	h.WriteEtc(t, "edited-after-staging", "kept\n") // the merge runs at shutdown
	h.Reboot(t)
	want("booted B", map[string]string{
		"motd":                 "local motd\n", // locally added before B shipped it: local wins
		"chrony.conf":          "chrony from B\n",
		"issue":                "issue from B\n",
		"ntp.conf":             "local ntp\n",
		"edited-after-staging": "kept\n",
	})

	h.WriteEtc(t, "issue", "edited on B\n")
	h.WriteEtc(t, "made-on-b", "B only\n")
	h.MustRun(t, "switch", reg.Push(t, "os", "c", imgC))
	h.Reboot(t)
	want("booted C", map[string]string{
		"chrony.conf": "chrony from C\n", // unmodified: follows the image
		"issue":       "edited on B\n",   // modified locally: wins although C dropped it
		"motd":        "local motd\n",
		"made-on-b":   "B only\n",
	})

	h.WriteEtc(t, "made-on-c", "C only\n")
	h.MustRun(t, "rollback")
	h.Reboot(t)
	want("rolled back to B", map[string]string{
		"chrony.conf": "chrony from B\n",
		"issue":       "edited on B\n",
		"made-on-b":   "B only\n",
		"made-on-c":   "", // changes made on C are not carried back
	})
	h.MustRun(t, "rollback")
	h.Reboot(t)
	want("back on C", map[string]string{"made-on-c": "C only\n", "chrony.conf": "chrony from C\n"})
}

func TestDownloadOnlyFlow(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	img := bootcsim.Image(t, bootcsim.ImageOptions{Version: "2"})
	reg.Push(t, "os", "stable", img)
	digest := bootcsim.Digest(t, img)
	staged := func() *bootc.BootEntry { return h.Status(t).Status.Staged }

	r := h.MustRun(t, "upgrade", "--download-only")
	if !strings.Contains(r.Stdout, "Queued for next boot: "+reg.Host+"/os:stable\n  Version: 2\n  Digest: "+digest) {
		t.Fatalf("stdout %q", r.Stdout)
	}
	if s := staged(); s == nil || !s.DownloadOnly || s.Digest() != digest {
		t.Fatalf("staged %+v, want %s locked", s, digest)
	}

	// An unplanned reboot discards a locked deployment.
	h.Reboot(t)
	if st := h.Status(t); st.Status.Staged != nil || st.BootedDigest() != initDigest {
		t.Fatalf("reboot applied a download-only deployment: %+v", st.Status)
	}
	if b := h.State(t).Boots; b[len(b)-1].Outcome != "discarded-download-only" {
		t.Fatalf("boot outcome %q", b[len(b)-1].Outcome)
	}

	h.MustRun(t, "upgrade", "--download-only")
	if r := h.MustRun(t, "upgrade", "--download-only"); r.Stdout != "Staged update present, not changed\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	if !staged().DownloadOnly {
		t.Fatal("repeating --download-only unlocked")
	}
	// A plain upgrade (like bootc-fetch-apply-updates) unlocks it.
	if r := h.MustRun(t, "upgrade"); r.Stdout != "Staged deployment will now be applied on reboot\nStaged update present, not changed\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	if staged().DownloadOnly {
		t.Fatal("plain upgrade left the deployment locked")
	}
	if r := h.MustRun(t, "upgrade", "--download-only"); !strings.HasPrefix(r.Stdout, "Image downloaded, but will not be applied on reboot\n") {
		t.Fatalf("stdout %q", r.Stdout)
	}

	before := len(h.Calls(t))
	if r := h.MustRun(t, "upgrade", "--from-downloaded"); r.Stdout != "Staged deployment will now be applied on reboot\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
	r = h.Run(t, "upgrade", "--from-downloaded", "--apply")
	if !r.Killed || r.Stdout != "Staged deployment is already set to apply on reboot\n" {
		t.Fatalf("from-downloaded --apply: killed %v stdout %q stderr %q", r.Killed, r.Stdout, r.Stderr)
	}
	if got := h.Status(t).BootedDigest(); got != digest {
		t.Fatalf("booted %s, want %s", got, digest)
	}
	for _, c := range h.Calls(t)[before:] {
		if c.Pulled {
			t.Fatalf("%v contacted the registry", c.Argv)
		}
	}
	wantExit(t, h.Run(t, "upgrade", "--from-downloaded"), 1, "error: Upgrading: No staged deployment found")
	if r := h.MustRun(t, "upgrade"); r.Stdout != "No update available.\n" {
		t.Fatalf("stdout %q", r.Stdout)
	}
}

func TestUpgradeCheckRecordsCachedUpdate(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	img := bootcsim.Image(t, bootcsim.ImageOptions{Version: "3"})
	reg.Push(t, "os", "stable", img)
	r := h.MustRun(t, "upgrade", "--check")
	want := fmt.Sprintf("Update available for: docker://%s/os:stable\n  Version: 3\n  Digest: %s\n", reg.Host, bootcsim.Digest(t, img))
	if r.Stdout != want {
		t.Fatalf("stdout %q, want %q", r.Stdout, want)
	}
	st := h.Status(t)
	if st.Status.Staged != nil || st.Status.Booted.CachedUpdate == nil || st.Status.Booted.CachedUpdate.ImageDigest != bootcsim.Digest(t, img) {
		t.Fatalf("after --check: staged %+v cachedUpdate %+v", st.Status.Staged, st.Status.Booted.CachedUpdate)
	}
	wantExit(t, h.Run(t, "upgrade", "--check", "--apply"), 2, "error: the argument '--check' cannot be used with '--apply'")
}

func TestVersionGatedFlagsAreRejectedLikeClap(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{Version: "1.1.6"})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	for _, args := range [][]string{
		{"upgrade", "--download-only"},
		{"upgrade", "--from-downloaded"},
		{"rollback", "--apply"},
		{"switch", "--soft-reboot=auto", ref},
	} {
		r := h.Run(t, args...)
		flag, _, _ := strings.Cut(args[1], "=")
		wantExit(t, r, 2, "error: unexpected argument '"+flag+"' found")
		if !strings.Contains(r.Stderr, "Usage: bootc "+args[0]) {
			t.Errorf("%v: no usage line: %s", args, r.Stderr)
		}
	}
	// What 1.1.6 does support still works.
	h.MustRun(t, "switch", "--apply=false", "--enforce-container-sigpolicy", ref)
	wantExit(t, h.Run(t, "frobnicate"), 2, "error: unrecognized subcommand 'frobnicate'")
}

func TestHealthFollowsTheBootedDigest(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	img := bootcsim.Image(t, bootcsim.ImageOptions{Marker: "bad"})
	ref := reg.Push(t, "os", "bad", img)
	h.MarkBad(t, bootcsim.Digest(t, img))
	h.MustRun(t, "sim", "health")
	h.MustRun(t, "switch", ref)
	h.MustRun(t, "sim", "health") // staged, not booted yet
	h.Reboot(t)
	wantExit(t, h.Run(t, "sim", "health"), 1, "booted image "+bootcsim.Digest(t, img)+" is marked bad")
	h.MustRun(t, "rollback")
	h.Reboot(t)
	h.MustRun(t, "sim", "health")
	h.MustRun(t, "sim", "mark-good", bootcsim.Digest(t, img))
	h.MustRun(t, "rollback")
	h.Reboot(t)
	h.MustRun(t, "sim", "health")
}

func TestSoftReboot(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{Kernel: "6.8.1", SoftRebootTarget: true})
	same := reg.Push(t, "os", "same-kernel", bootcsim.Image(t, bootcsim.ImageOptions{Kernel: "6.8.1", Marker: "s"}))
	other := reg.Push(t, "os", "new-kernel", bootcsim.Image(t, bootcsim.ImageOptions{Kernel: "6.9.0", Marker: "o"}))

	bootID := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(h.Root, "proc/sys/kernel/random/boot_id"))
		if err != nil || len(b) != 37 {
			t.Fatalf("boot ID %q: %v", b, err)
		}
		return string(b)
	}
	firstBoot := bootID()
	h.MustRun(t, "switch", same)
	if !h.Status(t).Status.Staged.SoftRebootCapable {
		t.Fatal("an image with the booted kernel is not soft-reboot capable")
	}
	// "required" fails after staging when the target is not capable.
	wantExit(t, h.Run(t, "switch", "--soft-reboot=required", other), 1,
		"error: Soft reboot was required but staged deployment is not soft-reboot capable")
	if st := h.Status(t).Status.Staged; st == nil || st.SoftRebootCapable || !strings.HasSuffix(other, st.Digest()) {
		t.Fatalf("staged %+v, want the new-kernel image, not capable", st)
	}
	// "auto" on a capable target prepares a soft reboot that --apply uses.
	r := h.Run(t, "switch", "--soft-reboot=auto", "--apply", same)
	if !r.Killed || !strings.Contains(r.Stdout, "Staged deployment is soft-reboot capable, preparing for soft-reboot...") {
		t.Fatalf("killed %v stdout %q stderr %q", r.Killed, r.Stdout, r.Stderr)
	}
	boots := h.State(t).Boots
	if last := boots[len(boots)-1]; !last.Soft || last.Outcome != "staged" || !strings.HasSuffix(same, last.Digest) {
		t.Fatalf("last boot %+v, want a soft boot into %s", last, same)
	}
	if bootID() != firstBoot {
		t.Fatal("a soft reboot changed the kernel boot ID")
	}
	// "auto" on a target that is not capable reboots fully.
	r = h.Run(t, "switch", "--soft-reboot=auto", "--apply", other)
	if !r.Killed || strings.Contains(r.Stdout, "soft-reboot capable") {
		t.Fatalf("killed %v stdout %q stderr %q", r.Killed, r.Stdout, r.Stderr)
	}
	boots = h.State(t).Boots
	if bootID() == firstBoot {
		t.Fatal("a full reboot kept the kernel boot ID")
	}
	if last := boots[len(boots)-1]; last.Soft || !strings.HasSuffix(other, last.Digest) {
		t.Fatalf("last boot %+v, want a full boot into %s", last, other)
	}
}

// Writers serialize on the sysroot lock: no update is lost.
func TestConcurrentWritersSerialize(t *testing.T) {
	_, h := setup(t, bootcsim.Options{})
	var wg sync.WaitGroup
	digests := make([]string, 12)
	for i := range digests {
		digests[i] = fmt.Sprintf("sha256:%064x", i+1)
		wg.Add(1)
		go func(d string) {
			defer wg.Done()
			if out, err := h.Command(context.Background(), "sim", "mark-bad", d).CombinedOutput(); err != nil {
				t.Errorf("mark-bad %s: %v: %s", d, err, out)
			}
		}(digests[i])
	}
	wg.Wait()
	got := slices.Clone(h.State(t).Bad)
	sort.Strings(got)
	if !reflect.DeepEqual(got, digests) {
		t.Fatalf("bad digests %v, want all of %v", got, digests)
	}
}

func TestEnforcedPolicyRefusesInsecureDefault(t *testing.T) {
	reg, h := setup(t, bootcsim.Options{})
	ref := reg.Push(t, "os", "v2", bootcsim.Image(t, bootcsim.ImageOptions{}))
	h.WriteRootFile(t, "etc/containers/policy.json", []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644)
	wantExit(t, h.Run(t, "switch", "--enforce-container-sigpolicy", ref), 1,
		"error: Switching: Pulling: containers-policy.json specifies a default of `insecureAcceptAnything`; refusing usage")
	h.MustRun(t, "switch", ref) // without enforcement the policy is used as it is
	h.WriteRootFile(t, "etc/containers/policy.json", []byte(`{"default":[{"type":"reject"}]}`), 0o644)
	h.MustRun(t, "switch", "--enforce-container-sigpolicy", ref)
}

func TestStateAndRootAreRequired(t *testing.T) {
	bin := bootcsim.Build(t)
	cmd := exec.Command(bin, "status", "--format=json")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 || !strings.Contains(string(out), "BOOTCSIM_STATE") {
		t.Fatalf("err %v, out %q", err, out)
	}
	cmd = exec.Command(bin, "rollback")
	cmd.Env = []string{"BOOTCSIM_STATE=" + filepath.Join(t.TempDir(), "s.json")}
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "BOOTCSIM_ROOT") {
		t.Fatalf("out %q", out)
	}
	// --version needs no configuration.
	cmd = exec.Command(bin, "--version")
	cmd.Env = []string{}
	if out, err := cmd.Output(); err != nil || string(out) != "bootc "+bootcsim.DefaultVersion+"\n" {
		t.Fatalf("--version: %q %v", out, err)
	}
}

// A writer that finds the sysroot lock taken says so on stderr, as bootc
// does, and proceeds once the lock is free.
func TestWriterWaitsForSysrootLock(t *testing.T) {
	_, h := setup(t, bootcsim.Options{})
	lock, err := os.OpenFile(h.StatePath+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("a", 64)
	cmd := h.Command(context.Background(), "sim", "mark-bad", digest)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || line != "Waiting for sysroot lock...\n" {
		t.Fatalf("stderr line %q, %v", line, err)
	}
	if len(h.State(t).Bad) != 0 {
		t.Fatal("the writer changed the state without the lock")
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	if bad := h.State(t).Bad; len(bad) != 1 || bad[0] != digest {
		t.Fatalf("bad digests %v", bad)
	}
}
