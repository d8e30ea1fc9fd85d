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
	key := loadSecretDigestKeyTwice(t, f)
	refuseSecretsWithoutKeyOrPlaintext(t, f, key)

	spec := []hostspec.EtcFile{secretFile("/etc/wifi.key", secretValue), etcFile("/etc/motd", "hi\n")}
	writeSecretWithoutTrace(t, f, spec)
	correctSecretDriftWithoutTrace(t, f, spec)
	// Left the spec: removed, still without content in the plan.
	p, _ := f.pass(t, spec[1:])
	assertNoSecretIn(t, "prune plan", p)
	if f.exists(t, "/etc/wifi.key") {
		t.Error("secret file not pruned")
	}
}

// loadSecretDigestKeyTwice creates the digest key (0600 in the state
// directory) and checks that loading it again gives the same key.
func loadSecretDigestKeyTwice(t *testing.T, f *fixture) []byte {
	t.Helper()
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
	return key
}

// refuseSecretsWithoutKeyOrPlaintext: without the digest key a secret is a
// problem and nothing is written; with it (f.w is replaced by a writer
// that has the key), a secret that was not decrypted is still a problem.
func refuseSecretsWithoutKeyOrPlaintext(t *testing.T, f *fixture, key []byte) {
	t.Helper()
	if p := f.plan(t, []hostspec.EtcFile{secretFile("/etc/wifi.key", secretValue)}); len(p.Problems) != 1 || len(p.Changes) != 0 {
		t.Fatalf("no key: %v", p.Problems)
	}
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
}

// writeSecretWithoutTrace writes spec (the secret first): 0600, and
// neither the plan, the manifest nor Managed holds the content or its
// plain sha256; the secret's change carries a keyed digest only.
func writeSecretWithoutTrace(t *testing.T, f *fixture, spec []hostspec.EtcFile) {
	t.Helper()
	p, _ := f.pass(t, spec)
	if got := f.read(t, "/etc/wifi.key"); got != secretValue {
		t.Fatalf("content %q", got)
	}
	if m, _, _ := f.stat(t, "/etc/wifi.key"); m != 0o600 {
		t.Errorf("mode %o", m)
	}
	assertNoSecretIn(t, "plan", p)
	for _, c := range p.Changes {
		if c.Path == "/etc/wifi.key" && (c.AfterContent != nil || !c.ContentOmitted || !strings.HasPrefix(c.After.SHA256, keyedPrefix)) {
			t.Errorf("secret change: %+v", c)
		}
	}
	manifest, err := os.ReadFile(filepath.Join(f.state, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecretIn(t, "manifest", string(manifest))
	managed, err := f.w.Managed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecretIn(t, "managed", managed)
}

// correctSecretDriftWithoutTrace: unchanged, nothing to do; edited on the
// host, drift is reported and corrected, without content in the plan.
func correctSecretDriftWithoutTrace(t *testing.T, f *fixture, spec []hostspec.EtcFile) {
	t.Helper()
	if p := f.plan(t, spec); !p.NoOp() {
		t.Errorf("second plan: %v", changeSummary(p))
	}
	f.put(t, "/etc/wifi.key", "guess", 0o600)
	p := f.plan(t, spec)
	if d := driftSummary(p); len(d) != 1 || !strings.Contains(d[0], "modified") {
		t.Errorf("drift: %v", d)
	}
	assertNoSecretIn(t, "drift plan", p)
	f.pass(t, spec)
	if got := f.read(t, "/etc/wifi.key"); got != secretValue {
		t.Fatalf("not corrected: %q", got)
	}
}

// assertNoSecretIn fails when v, as JSON, holds secretValue or its plain
// sha256.
func assertNoSecretIn(t *testing.T, what string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{secretValue, shaOf(secretValue)} {
		if strings.Contains(string(b), bad) {
			t.Errorf("%s holds %q:\n%s", what, bad, b)
		}
	}
}
