package bootc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// fixtureDir holds bootc's own status fixtures (see SOURCES.md there).
const fixtureDir = "testdata/bootc-status" // copied verbatim from bootc; provenance in SOURCES.md

const (
	digestB38 = "sha256:47e5ed613a970b6574bfa954ab25bb6e85656552899aa518b5961d9645102b38"
	digestB37 = "sha256:47e5ed613a970b6574bfa954ab25bb6e85656552899aa518b5961d9645102b37"
	digest736 = "sha256:736b359467c9437c1ac915acaae952aad854e07eb4a16a94999a48af08c83c34"
	digest16d = "sha256:16dc2b6256b4ff0d2ec18d2dbfb06d117904010c8cf9732cdb022818cf7a7566"
	digestB5b = "sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"
)

// fixtureExpectations says, per fixture file name, what a correct parse
// must show. Both fixture sets share names; old is true for the older set
// (bootc v1.1.6 era), which lacks architecture and ostree.stateroot.
var fixtureExpectations = map[string]func(t *testing.T, h *Host, old bool){
	"spec-booted-pinned.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB38)
		eq(t, "booted.pinned", h.Status.Booted.Pinned, true)
		eq(t, "otherDeployments", len(h.Status.OtherDeployments), 1)
		eq(t, "otherDeployments[0] digest", h.Status.OtherDeployments[0].Digest(), digestB37)
		eq(t, "otherDeployments[0] arch", h.Status.OtherDeployments[0].Architecture(), "arm64")
		eq(t, "stateroot", h.Status.Booted.Ostree.Stateroot, "default")
	},
	"spec-booted-update-same-digest.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB38)
		eq(t, "cachedUpdate digest", h.Status.Booted.CachedUpdate.ImageDigest, digestB38)
	},
	"spec-booted-usroverlay.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digest736)
		eq(t, "usrOverlay", *h.Status.UsrOverlay, UsrOverlay{AccessMode: "readWrite", Persistence: "transient"})
		eq(t, "spec signature", *h.Spec.Image.Signature, ImageSignature{Kind: SignatureInsecure})
		eq(t, "bootOrder (schema default)", h.Spec.BootOrder, BootOrderDefault)
		eq(t, "rollbackQueued (absent)", h.Status.RollbackQueued, false)
	},
	"spec-booted-with-update-no-version.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB38)
		cu := h.Status.Booted.CachedUpdate
		eq(t, "cachedUpdate version is null", cu.Version == nil, true)
		eq(t, "cachedUpdate digest", cu.ImageDigest, "sha256:b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1")
	},
	"spec-booted-with-update.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB38)
		cu := h.Status.Booted.CachedUpdate
		eq(t, "cachedUpdate version", *cu.Version, "stream9.20240901.0")
		ts, err := cu.BuildTime()
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "cachedUpdate timestamp", ts, time.Date(2024, 9, 1, 12, 0, 0, 0, time.UTC))
	},
	"spec-only-booted.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB38)
		eq(t, "staged", h.Status.Staged == nil, true)
		eq(t, "type", *h.Status.Type, HostTypeBootcHost)
		eq(t, "version", *h.Status.Booted.Image.Version, "stream9.20240807.0")
		eq(t, "timestamp is null", h.Status.Booted.Image.Timestamp == nil, true)
		wantOld(t, h.Status.Booted, old, "arm64")
	},
	"spec-ostree-remote.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB5b)
		eq(t, "spec signature", *h.Spec.Image.Signature, ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: "fedora"})
		// An unquoted YAML float must stay the exact string.
		eq(t, "version", *h.Status.Booted.Image.Version, "20231230.1")
		eq(t, "timestamp", *h.Status.Booted.Image.Timestamp, "2023-12-30T16:10:11Z")
		wantOld(t, h.Status.Booted, old, "arm64")
	},
	"spec-ostree-to-bootc.yaml": func(t *testing.T, h *Host, old bool) {
		eq(t, "IsBootc (booted is a plain ostree commit)", h.IsBootc(), true)
		eq(t, "booted image is null", h.Status.Booted.Image == nil, true)
		eq(t, "BootedDigest", h.BootedDigest(), "")
		eq(t, "booted store is null", h.Status.Booted.Store == nil, true)
		eq(t, "type is null", h.Status.Type == nil, true)
		eq(t, "StagedDigest", h.StagedDigest(), digestB38)
		eq(t, "staged store", *h.Status.Staged.Store, StoreOstreeContainer)
		eq(t, "staged checksum", h.Status.Staged.Ostree.Checksum, "05cbf6dcae32e7a1c5a0774a648a073a5834a305ca92204b53fb6c281fe49db1")
		wantOld(t, h.Status.Staged, old, "s390x")
	},
	"spec-rfe-ostree-deployment.yaml": func(t *testing.T, h *Host, old bool) {
		eq(t, "spec.image is null", h.Spec.Image == nil, true)
		eq(t, "staged incompatible", h.Status.Staged.Incompatible, true)
		eq(t, "booted incompatible", h.Status.Booted.Incompatible, false)
		eq(t, "StagedDigest", h.StagedDigest(), "")
	},
	"spec-staged-booted.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digest736)
		eq(t, "StagedDigest", h.StagedDigest(), digest16d)
		eq(t, "staged downloadOnly", h.Status.Staged.DownloadOnly, false)
		ts, err := h.Status.Staged.Image.BuildTime()
		if err != nil {
			t.Fatal(err)
		}
		if old {
			eq(t, "staged timestamp", ts, time.Date(2023, 10, 14, 19, 22, 15, 0, time.UTC))
		} else {
			eq(t, "staged timestamp (fractional)", ts, time.Date(2023, 10, 14, 19, 22, 15, 420_000_000, time.UTC))
		}
		wantOld(t, h.Status.Staged, old, "arm64")
	},
	"spec-staged-download-only.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digest736)
		eq(t, "staged downloadOnly", h.Status.Staged.DownloadOnly, true)
		eq(t, "booted downloadOnly (absent)", h.Status.Booted.DownloadOnly, false)
		eq(t, "softRebootCapable (absent)", h.Status.Staged.SoftRebootCapable, false)
	},
	"spec-staged-rollback.yaml": func(t *testing.T, h *Host, old bool) {
		eq(t, "IsBootc (booted is null)", h.IsBootc(), false)
		eq(t, "BootedDigest", h.BootedDigest(), "")
		eq(t, "StagedDigest", h.StagedDigest(), digest16d)
		eq(t, "RollbackDigest", h.RollbackDigest(), digest736)
		wantOld(t, h.Status.Rollback, old, "s390x")
	},
	"spec-v1-null.json": func(t *testing.T, h *Host, old bool) {
		eq(t, "apiVersion", h.APIVersion, APIVersionV1)
		eq(t, "IsBootc", h.IsBootc(), false)
		eq(t, "spec.image is null", h.Spec.Image == nil, true)
		eq(t, "type is null", h.Status.Type == nil, true)
		eq(t, "metadata.name", h.Metadata.Name, "host")
	},
	"spec-v1a1-orig.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digest736)
		eq(t, "apiVersion", h.APIVersion, APIVersionV1Alpha1)
		eq(t, "StagedDigest", h.StagedDigest(), digest16d)
		eq(t, "staged image signature", *h.Status.Staged.Image.Image.Signature, ImageSignature{Kind: SignatureInsecure})
		wantOld(t, h.Status.Staged, old, "amd64")
	},
	"spec-v1a1.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB5b)
		eq(t, "spec signature absent", h.Spec.Image.Signature == nil, true)
		wantOld(t, h.Status.Booted, old, "s390x")
	},
	"spec-via-local-oci.yaml": func(t *testing.T, h *Host, old bool) {
		wantBootc(t, h, digestB38)
		eq(t, "spec transport", h.Spec.Image.Transport, "oci")
		eq(t, "spec image", h.Spec.Image.Image, "/var/mnt/osupdate:latest")
		eq(t, "booted image", h.Status.Booted.Image.Image.Image, "/var/mnt/osupdate")
	},
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantBootc(t *testing.T, h *Host, booted string) {
	t.Helper()
	eq(t, "IsBootc", h.IsBootc(), true)
	eq(t, "BootedDigest", h.BootedDigest(), booted)
}

// wantOld checks the fields the older fixture set lacks.
func wantOld(t *testing.T, e *BootEntry, old bool, arch string) {
	t.Helper()
	if old {
		eq(t, "architecture (absent before 1.1.7)", e.Architecture(), "")
		eq(t, "stateroot (absent before 1.3)", e.Ostree.Stateroot, "")
		return
	}
	eq(t, "architecture", e.Architecture(), arch)
	eq(t, "stateroot", e.Ostree.Stateroot, "default")
}

func fixtureFiles(t *testing.T) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	for dir, old := range map[string]bool{fixtureDir: false, filepath.Join(fixtureDir, "containers-bootc-8e2cf08"): true} {
		for _, pattern := range []string{"spec-*.yaml", "spec-*.json"} {
			m, err := filepath.Glob(filepath.Join(dir, pattern))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range m {
				files[f] = old
			}
		}
	}
	if len(files) < 26 {
		t.Fatalf("found %d fixtures under %s, want the 16 current and 10 older ones", len(files), fixtureDir)
	}
	return files
}

func TestParseStatusReadsEveryFixture(t *testing.T) {
	for path, old := range fixtureFiles(t) {
		t.Run(strings.TrimPrefix(path, fixtureDir+"/"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			h, err := ParseStatus(data)
			if err != nil {
				t.Fatalf("ParseStatus: %v", err)
			}
			check, ok := fixtureExpectations[filepath.Base(path)]
			if !ok {
				t.Fatalf("no expectations for fixture %s: add them to fixtureExpectations", filepath.Base(path))
			}
			eq(t, "kind", h.Kind, KindBootcHost)
			check(t, h, old)
		})
	}
}

// Marshalling a parsed fixture to JSON and parsing that again must give
// the same model: the JSON form (including the signature union) loses
// nothing the parser read.
func TestStatusRoundTripsThroughJSON(t *testing.T) {
	for path := range fixtureFiles(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseStatus(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("%s: marshal: %v", path, err)
		}
		again, err := ParseStatus(js)
		if err != nil {
			t.Fatalf("%s: parse marshalled JSON: %v\n%s", path, err, js)
		}
		if !reflect.DeepEqual(h, again) {
			t.Errorf("%s: JSON round trip changed the model\nbefore: %+v\nafter:  %+v", path, h, again)
		}
	}
}

func TestSignatureUnionJSON(t *testing.T) {
	for _, tc := range []struct {
		json string
		want ImageSignature
	}{
		{`"containerPolicy"`, ImageSignature{Kind: SignatureContainerPolicy}},
		{`"insecure"`, ImageSignature{Kind: SignatureInsecure}},
		{`{"ostreeRemote":"fedora"}`, ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: "fedora"}},
		// A variant added by a newer bootc is kept, not an error.
		{`"futureMode"`, ImageSignature{Kind: "futureMode"}},
	} {
		var got ImageSignature
		if err := json.Unmarshal([]byte(tc.json), &got); err != nil {
			t.Errorf("unmarshal %s: %v", tc.json, err)
			continue
		}
		eq(t, "unmarshal "+tc.json, got, tc.want)
		out, err := json.Marshal(got)
		if err != nil {
			t.Errorf("marshal %+v: %v", got, err)
			continue
		}
		eq(t, "marshal back", string(out), tc.json)
	}
	for _, bad := range []string{`""`, `"ostreeRemote"`, `{"other":"x"}`, `{"ostreeRemote":1}`, `{"ostreeRemote":"a","x":"b"}`, `42`, `["insecure"]`} {
		var got ImageSignature
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("unmarshal %s = %+v, want an error", bad, got)
		}
	}
	if _, err := json.Marshal(ImageSignature{}); err == nil {
		t.Error("marshal of an empty signature succeeded, want an error")
	}
}

func TestSignatureUnionYAML(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want ImageSignature
	}{
		{`sig: containerPolicy`, ImageSignature{Kind: SignatureContainerPolicy}},
		{`sig: insecure`, ImageSignature{Kind: SignatureInsecure}},
		{`sig: !ostreeRemote "fedora"`, ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: "fedora"}},
		{`sig: {ostreeRemote: fedora}`, ImageSignature{Kind: SignatureOstreeRemote, OstreeRemote: "fedora"}},
	} {
		var doc struct {
			Sig *ImageSignature `yaml:"sig"`
		}
		if err := yaml.Unmarshal([]byte(tc.yaml), &doc); err != nil {
			t.Errorf("unmarshal %q: %v", tc.yaml, err)
			continue
		}
		eq(t, "unmarshal "+tc.yaml, *doc.Sig, tc.want)
	}
	out, err := yaml.Marshal(map[string]ImageSignature{"sig": {Kind: SignatureOstreeRemote, OstreeRemote: "fedora"}})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "marshal ostreeRemote", string(out), "sig: !ostreeRemote fedora\n")
	var bad struct {
		Sig *ImageSignature `yaml:"sig"`
	}
	if err := yaml.Unmarshal([]byte("sig: !unknownTag x"), &bad); err == nil {
		t.Error("an unknown YAML tag was accepted")
	}
}

// bootc omits signature when it is None; so must we, or a client would
// read a null signature where bootc printed none.
func TestImageReferenceOmitsNilSignature(t *testing.T) {
	out, err := json.Marshal(ImageReference{Image: "quay.io/x/y@sha256:00", Transport: TransportRegistry})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "JSON", string(out), `{"image":"quay.io/x/y@sha256:00","transport":"registry"}`)
	var ref ImageReference
	if err := json.Unmarshal([]byte(`{"image":"a","transport":"registry","signature":null}`), &ref); err != nil {
		t.Fatal(err)
	}
	eq(t, "null signature", ref.Signature == nil, true)
	eq(t, "EnforcesContainerPolicy", ref.EnforcesContainerPolicy(), false)
}

func TestParseStatusTreatsMissingKeysAsZero(t *testing.T) {
	// The shape bootc 1.1.x printed: no softRebootCapable, downloadOnly,
	// readOnly, usrOverlay, architecture or stateroot.
	h, err := ParseStatus([]byte(`{"apiVersion":"org.containers.bootc/v1","kind":"BootcHost","metadata":{"name":"host"},
		"spec":{"image":{"image":"quay.io/a/b:c","transport":"registry","signature":"containerPolicy"},"bootOrder":"default"},
		"status":{"staged":{"image":{"image":{"image":"quay.io/a/b:c","transport":"registry"},"version":null,"timestamp":null,"imageDigest":"sha256:aa"},"cachedUpdate":null,"incompatible":false,"pinned":false,"store":"ostreeContainer","ostree":{"checksum":"c","deploySerial":1}},
		"booted":{"image":{"image":{"image":"quay.io/a/b:c","transport":"registry"},"version":"1","timestamp":null,"imageDigest":"sha256:bb"},"cachedUpdate":null,"incompatible":false,"pinned":false,"store":"ostreeContainer","ostree":{"checksum":"d","deploySerial":0}},
		"rollback":null,"rollbackQueued":false,"type":"bootcHost"}}`))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "staged softRebootCapable", h.Status.Staged.SoftRebootCapable, false)
	eq(t, "staged downloadOnly", h.Status.Staged.DownloadOnly, false)
	eq(t, "readOnly", h.Status.ReadOnly, false)
	eq(t, "usrOverlay", h.Status.UsrOverlay == nil, true)
	eq(t, "staged serial", h.Status.Staged.Ostree.DeploySerial, uint32(1))
	eq(t, "spec enforces policy", h.Spec.Image.EnforcesContainerPolicy(), true)
	eq(t, "StagedDigest", h.StagedDigest(), "sha256:aa")
}

func TestParseStatusIgnoresUnknownKeys(t *testing.T) {
	h, err := ParseStatus([]byte(`{"apiVersion":"org.containers.bootc/v1","kind":"BootcHost","futureTop":1,
		"metadata":{"name":"host","uid":"x"},"spec":{"image":null,"bootOrder":"rollback","futureSpec":[1,2]},
		"status":{"booted":{"image":{"image":{"image":"r/i","transport":"registry","futureRef":{}},"imageDigest":"sha256:cc","architecture":"arm64","futureImage":true},
		"incompatible":false,"pinned":false,"futureEntry":{"a":"b"}},"rollbackQueued":true,"futureStatus":"x","type":"someNewHostType"}}`))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "BootedDigest", h.BootedDigest(), "sha256:cc")
	eq(t, "bootOrder", h.Spec.BootOrder, BootOrderRollback)
	eq(t, "rollbackQueued", h.Status.RollbackQueued, true)
	eq(t, "type (open enum)", *h.Status.Type, "someNewHostType")
}

func TestParseStatusRefusesWhatIsNotBootcStatus(t *testing.T) {
	for _, tc := range []struct{ input, wantErr string }{
		{`{"apiVersion":"org.containers.bootc/v2","kind":"BootcHost"}`, `unsupported apiVersion "org.containers.bootc/v2"`},
		{"apiVersion: example.com/v1\nkind: BootcHost\n", `unsupported apiVersion "example.com/v1"`},
		{`{"kind":"BootcHost"}`, "no apiVersion"},
		{`{"apiVersion":"org.containers.bootc/v1","kind":"Pod"}`, `kind is "Pod"`},
		{"", "empty output"},
		{"  \n", "empty output"},
		{`{"apiVersion":`, "parse bootc status JSON"},
		{"error: This command must be executed as the root user", "no apiVersion"},
		{"- a\n- b\n", "parse bootc status YAML"},
		{`{"apiVersion":"org.containers.bootc/v1","kind":"BootcHost","status":{"booted":{"incompatible":"yes"}}}`, "parse bootc status JSON"},
	} {
		_, err := ParseStatus([]byte(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseStatus(%q) error = %v, want it to contain %q", tc.input, err, tc.wantErr)
		}
	}
}

func BenchmarkParseStatusJSON(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(fixtureDir, "spec-staged-booted.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := ParseStatus(data)
	if err != nil {
		b.Fatal(err)
	}
	js, err := json.Marshal(h)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	for b.Loop() {
		if _, err := ParseStatus(js); err != nil {
			b.Fatal(err)
		}
	}
}
