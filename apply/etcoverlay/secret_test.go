package etcoverlay

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/hostspec"
)

const secretValue = "wifi-psk-71"

func secretFile(p, content string) hostspec.EtcFile {
	f := etcFile(p, content, mode(0o600))
	f.SHA256 = ""
	f.Secret = &hostspec.SecretRef{File: "secrets/wifi.yaml", Format: "sops-yaml", Fingerprint: "sops:1", Decrypted: true}
	return f
}

// TestSecretFilesAreTrackedByKeyedDigests: a secret file is written 0600,
// its drift is detected, and neither the manifest, the plan nor the
// status holds its content or its plain sha256.
func TestSecretFilesAreTrackedByKeyedDigests(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key, err := LoadSecretDigestKey(ctx, f.state, true)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(f.state, SecretDigestKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	again, _ := LoadSecretDigestKey(ctx, f.state, true)
	if string(again) != string(key) {
		t.Fatal("the key changed on the second load")
	}
	// Without the key, a secret is a problem and nothing is written.
	if p := f.plan(t, []hostspec.EtcFile{secretFile("/etc/wifi.key", secretValue)}); len(p.Problems) != 1 || len(p.Changes) != 0 {
		t.Fatalf("no key: %v", p.Problems)
	}
	// Nor is a secret that was not decrypted.
	w, err := New(f.root, f.state, WithSystemctl(f.w.systemctl...), WithBootIDFile(f.bootIDFile), WithSecretDigestKey(key))
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	undecrypted := secretFile("/etc/wifi.key", "")
	undecrypted.Secret.Decrypted = false
	if p := f.plan(t, []hostspec.EtcFile{undecrypted}); len(p.Problems) != 1 {
		t.Fatalf("undecrypted: %v", p.Problems)
	}

	spec := []hostspec.EtcFile{secretFile("/etc/wifi.key", secretValue), etcFile("/etc/motd", "hi\n")}
	p, _ := f.pass(t, spec)
	if got := f.read(t, "/etc/wifi.key"); got != secretValue {
		t.Fatalf("content %q", got)
	}
	if m, _, _ := f.stat(t, "/etc/wifi.key"); m != 0o600 {
		t.Errorf("mode %o", m)
	}
	plain := shaOf(secretValue)
	check := func(what string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{secretValue, plain} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s holds %q:\n%s", what, bad, b)
			}
		}
	}
	check("plan", p)
	for _, c := range p.Changes {
		if c.Path == "/etc/wifi.key" && (c.AfterContent != nil || !c.ContentOmitted || !strings.HasPrefix(c.After.SHA256, keyedPrefix)) {
			t.Errorf("secret change: %+v", c)
		}
	}
	manifest, err := os.ReadFile(filepath.Join(f.state, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	check("manifest", string(manifest))
	managed, err := f.w.Managed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("managed", managed)

	// Unchanged: nothing to do. Edited: drift, corrected, without content.
	if p := f.plan(t, spec); !p.NoOp() {
		t.Errorf("second plan: %v", changeSummary(p))
	}
	f.put(t, "/etc/wifi.key", "guess", 0o600)
	p = f.plan(t, spec)
	if d := driftSummary(p); len(d) != 1 || !strings.Contains(d[0], "modified") {
		t.Errorf("drift: %v", d)
	}
	check("drift plan", p)
	f.pass(t, spec)
	if got := f.read(t, "/etc/wifi.key"); got != secretValue {
		t.Fatalf("not corrected: %q", got)
	}
	// Left the spec: removed, still without content in the plan.
	p, _ = f.pass(t, spec[1:])
	check("prune plan", p)
	if f.exists(t, "/etc/wifi.key") {
		t.Error("secret file not pruned")
	}
}
