package fleetdiff

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bootsync/bootsync/test/secrettest"
)

// TestDiffSaysSecretChangedWithoutPlaintext: a secret rotated in Git
// (re-encrypted by the real sops) shows as "secret changed"; a secret whose
// mode alone changes as "secret unchanged"; no output holds the plaintext
// or a digest of it.
func TestDiffSaysSecretChangedWithoutPlaintext(t *testing.T) {
	const oldPSK, newPSK = "old-psk-value-5521", "new-psk-value-8830"
	dir := t.TempDir()
	web := secrettest.NewHost(t, dir+"/web")
	fleet := func(psk, tokenMode string, wifi, token []byte) fstest.MapFS {
		return fstest.MapFS{
			"fleet.yaml": {Data: []byte(header + "kind: Fleet\nspec: {image: registry.example.com/os:1}\n")},
			"hosts/web-01.yaml": {Data: []byte(header + `kind: Host
metadata: {name: web-01}
spec:
  secrets: {recipients: [` + web.AgeRecipient + `]}
  etc:
    - {path: /etc/wifi.env, sops: s/wifi.env}
    - {path: /etc/nm.conf, sops: s/wifi.env, template: true, content: "psk={{ .Secrets.PSK }}\n"}
    - {path: /etc/token, age: s/token.age, mode: "` + tokenMode + `"}
`)},
			"s/wifi.env":  {Data: wifi},
			"s/token.age": {Data: token},
		}
	}
	token := secrettest.AgeEncrypt(t, dir, oldPSK, web.AgeRecipient)
	base := fleet(oldPSK, "0600", secrettest.SOPSEncrypt(t, dir, "wifi.env", "PSK="+oldPSK+"\n", web.AgeRecipient), token)
	head := fleet(newPSK, "0640", secrettest.SOPSEncrypt(t, dir, "wifi.env", "PSK="+newPSK+"\n", web.AgeRecipient), token)
	rep, err := Compare(context.Background(), load(t, "base", base), load(t, "head", head), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range rep.Hosts {
		for _, f := range h.Files {
			got[f.Path] = f.Secret
			if f.BaseSHA256 != "" || f.HeadSHA256 != "" {
				t.Errorf("%s: digests %q %q", f.Path, f.BaseSHA256, f.HeadSHA256)
			}
		}
	}
	want := map[string]string{"/etc/wifi.env": SecretChanged, "/etc/nm.conf": SecretChanged, "/etc/token": SecretUnchanged}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q (all: %v)", p, got[p], w, got)
		}
	}
	var out bytes.Buffer
	for _, write := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return rep.WriteText(b) },
		func(b *bytes.Buffer) error { return rep.WriteJSON(b) },
		func(b *bytes.Buffer) error { return rep.WriteMarkdown(b) },
	} {
		if err := write(&out); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(out.String(), "secret changed") || !strings.Contains(out.String(), "secret unchanged") {
		t.Errorf("output lacks the secret lines:\n%s", out.String())
	}
	secrettest.AssertNoPlaintext(t, "diff output", out.String(), oldPSK, newPSK)
}
