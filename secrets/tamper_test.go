package secrets_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/secrets"
	"github.com/bootsync/bootsync/test/secrettest"
)

// TestSOPSCLIFileEditedByHandIsRefused: a file made by the real
// `sops encrypt --age`, then edited by hand — the ciphertext of a value,
// its MAC, both, or its lastmodified (the MAC's associated data) — is
// refused on its own host, with an error that names the file, says it was
// changed without sops and holds no plaintext; the real `sops decrypt`
// refuses it too. The untouched file decrypts, so only the edit is wrong.
func TestSOPSCLIFileEditedByHandIsRefused(t *testing.T) {
	const psk, ssid = "tampered-psk-5120", "home-net-3307"
	ctx := context.Background()
	dir := t.TempDir()
	keys := secrettest.NewHost(t, filepath.Join(dir, "web"))
	enc := secrettest.SOPSEncrypt(t, dir, "wifi.yaml", "wifi:\n  ssid: "+ssid+"\n  psk: "+psk+"\n", keys.AgeRecipient)
	ring, err := secrets.LoadKeyring(ctx, []string{keys.IdentityFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := decrypt(ctx, ring, enc); err != nil || !strings.Contains(string(out), psk) {
		t.Fatalf("the untouched file: %q, %v", out, err)
	}
	lastModified := regexp.MustCompile(`(lastmodified: "\d)\d`)
	cases := map[string][]byte{
		"value":         secrettest.TamperSOPS(t, enc, "psk"),
		"mac":           secrettest.TamperSOPS(t, enc, "mac"),
		"value and mac": secrettest.TamperSOPS(t, secrettest.TamperSOPS(t, enc, "psk"), "mac"),
		"lastmodified":  lastModified.ReplaceAll(enc, []byte("${1}1")),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if string(bad) == string(enc) {
				t.Fatal("the edit changed nothing")
			}
			out, doc, err := decrypt(ctx, ring, bad)
			if err == nil {
				t.Fatalf("a file edited by hand decrypted: %q %v", out, doc)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "secrets/wifi.yaml: ") || !strings.Contains(msg, "changed without sops") {
				t.Fatalf("unclear error: %v", err)
			}
			secrettest.AssertNoPlaintext(t, "error", err.Error(), psk, ssid)
			if out, err := secrettest.SOPSDecrypt(t, dir, "wifi.yaml", bad, keys.IdentityFile); err == nil {
				t.Fatalf("the sops CLI accepts the edited file, so the test does not tamper:\n%s", out)
			}
		})
	}
}

func decrypt(ctx context.Context, ring *secrets.Keyring, enc []byte) ([]byte, any, error) {
	f, err := secrets.ParseSOPS("secrets/wifi.yaml", enc)
	if err != nil {
		return nil, nil, err
	}
	return ring.DecryptSOPS(ctx, f, 1<<20)
}
