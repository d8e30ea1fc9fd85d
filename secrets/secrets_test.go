package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/keys"
	"golang.org/x/crypto/ssh"

	"github.com/bootsync/bootsync/test/secrettest"
)

const plaintextPSK = "correct-horse-battery-staple-7"

// host is a simulated host's key material on disk.
// newHost is a simulated host's key material in a temporary directory.
func newHost(t *testing.T) secrettest.Host { return secrettest.NewHost(t, t.TempDir()) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ageEncrypt(t *testing.T, plain string, recipients ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(plain)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sopsEncrypt encrypts a plain document the way `sops encrypt --age` does,
// with sops's own packages.
func sopsEncrypt(t *testing.T, name, plain string, recipients ...string) []byte {
	t.Helper()
	st := store(formats.FormatForPath(name))
	branches, err := st.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	var group sops.KeyGroup
	for _, r := range recipients {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			t.Fatal(err)
		}
		group = append(group, keys.MasterKey(mk))
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups: []sops.KeyGroup{group}, Version: "3.13.3", UnencryptedSuffix: "_unencrypted",
	}}
	key, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(key, cipher)
	if err != nil {
		t.Fatal(err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	out, err := st.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keyring(t *testing.T, h secrettest.Host, withIdentity bool) *Keyring {
	t.Helper()
	var ids []string
	if withIdentity {
		ids = []string{h.IdentityFile}
	}
	k, err := LoadKeyring(context.Background(), ids, []string{h.SSHKeyFile, filepath.Join(t.TempDir(), "ssh_host_rsa_key")})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func assertNoPlaintext(t *testing.T, what string, s string) {
	t.Helper()
	if strings.Contains(s, plaintextPSK) {
		t.Fatalf("%s contains the plaintext: %s", what, s)
	}
}

func TestAgeFileDecryptsOnlyOnItsHost(t *testing.T) {
	ctx := context.Background()
	web, db := newHost(t), newHost(t)
	webID, _ := age.ParseX25519Recipient(web.AgeRecipient)
	sshRec, err := agessh.ParseRecipient(web.SSHPublic)
	if err != nil {
		t.Fatal(err)
	}
	derived, _ := age.ParseX25519Recipient(web.SSHToAge(t))
	cases := map[string]struct {
		rec          age.Recipient
		withIdentity bool
	}{
		"age identity file":           {webID, true},
		"ssh-ed25519 recipient":       {sshRec, false},
		"ssh-to-age X25519 recipient": {derived, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := ParseAge("etc/psk.age", ageEncrypt(t, plaintextPSK, c.rec))
			if err != nil {
				t.Fatal(err)
			}
			got, err := keyring(t, web, c.withIdentity).DecryptAge(ctx, f, 1<<20)
			if err != nil {
				t.Fatalf("web cannot decrypt its own secret: %v", err)
			}
			if string(got) != plaintextPSK {
				t.Fatalf("decrypted %q", got)
			}
			_, err = keyring(t, db, true).DecryptAge(ctx, f, 1<<20)
			var se *Error
			if !errors.As(err, &se) || !strings.Contains(err.Error(), "not encrypted to any key of this host") || se.File != "etc/psk.age" {
				t.Fatalf("db: want a clear refusal naming the file, got %v", err)
			}
			assertNoPlaintext(t, "error", err.Error())
		})
	}
}

func TestRSAHostKeyDecryptsAgeFile(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ssh_host_rsa_key")
	writeFile(t, path, string(pem.EncodeToMemory(blk)))
	sp, _ := ssh.NewPublicKey(&priv.PublicKey)
	rec, err := agessh.ParseRecipient(string(ssh.MarshalAuthorizedKey(sp)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseAge("etc/token.age", ageEncrypt(t, plaintextPSK, rec))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Stanzas) != 1 || f.Stanzas[0].Type != "ssh-rsa" || f.Stanzas[0].SSHTag == "" {
		t.Fatalf("stanzas %+v", f.Stanzas)
	}
	k, err := LoadKeyring(context.Background(), nil, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.DecryptAge(context.Background(), f, 1<<20)
	if err != nil || string(got) != plaintextPSK {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestSOPSFormatsDecryptOnlyOnTheirHost(t *testing.T) {
	ctx := context.Background()
	web, db := newHost(t), newHost(t)
	docs := map[string]string{
		"wifi.yaml": "wifi:\n  ssid: home\n  psk: " + plaintextPSK + "\n",
		"wifi.json": `{"wifi": {"ssid": "home", "psk": "` + plaintextPSK + `"}}`,
		"wifi.env":  "PSK=" + plaintextPSK + "\n",
		"wifi.ini":  "[wifi]\npsk = " + plaintextPSK + "\n",
		"wifi.bin":  "psk=" + plaintextPSK + "\n",
	}
	for name, plain := range docs {
		t.Run(name, func(t *testing.T) {
			enc := sopsEncrypt(t, name, plain, web.SSHToAge(t))
			assertNoPlaintext(t, "encrypted file", string(enc))
			f, err := ParseSOPS(name, enc)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Recipients(); len(got) != 1 || got[0] != web.SSHToAge(t) {
				t.Fatalf("recipients %v", got)
			}
			out, doc, err := keyring(t, web, false).DecryptSOPS(ctx, f, 1<<20)
			if err != nil {
				t.Fatalf("web: %v", err)
			}
			if !strings.Contains(string(out), plaintextPSK) {
				t.Fatalf("decrypted %q", out)
			}
			if name == "wifi.yaml" {
				if psk := doc.(map[string]any)["wifi"].(map[string]any)["psk"]; psk != plaintextPSK {
					t.Fatalf("template data psk = %v", psk)
				}
				if shape := f.Shape.(map[string]any)["wifi"].(map[string]any)["psk"]; shape != secretPlaceholder {
					t.Fatalf("CI shape psk = %v", shape)
				}
			}
			_, _, err = keyring(t, db, true).DecryptSOPS(ctx, f, 1<<20)
			if err == nil || !strings.Contains(err.Error(), "not encrypted to any key of this host") || !strings.Contains(err.Error(), web.SSHToAge(t)) {
				t.Fatalf("db: want a refusal naming the recipient, got %v", err)
			}
			assertNoPlaintext(t, "error", err.Error())
		})
	}
}

func TestSOPSFingerprintChangesOnReencryptionOnly(t *testing.T) {
	web := newHost(t)
	plain := "psk: " + plaintextPSK + "\n"
	a, _ := ParseSOPS("s.yaml", sopsEncrypt(t, "s.yaml", plain, web.AgeRecipient))
	b, _ := ParseSOPS("s.yaml", sopsEncrypt(t, "s.yaml", plain, web.AgeRecipient))
	if a.Fingerprint == b.Fingerprint {
		t.Fatal("two encryptions share a fingerprint: it would be a digest of the plaintext")
	}
	assertNoPlaintext(t, "fingerprint", a.Fingerprint)
}

func TestSOPSTamperedValueIsRefused(t *testing.T) {
	web := newHost(t)
	enc := string(sopsEncrypt(t, "s.yaml", "a: one-secret\nb: two-secret\n", web.AgeRecipient))
	// Swap the two encrypted values: sops binds each to its path, so the
	// file must be refused as changed without sops.
	lines := strings.Split(enc, "\n")
	lines[0], lines[1] = "a:"+strings.TrimPrefix(lines[1], "b:"), "b:"+strings.TrimPrefix(lines[0], "a:")
	f, err := ParseSOPS("s.yaml", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = keyring(t, web, true).DecryptSOPS(context.Background(), f, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "s.yaml") || !strings.Contains(err.Error(), "changed without sops") {
		t.Fatalf("tampered file accepted or unclear error: %v", err)
	}
	if strings.Contains(err.Error(), "one-secret") || strings.Contains(err.Error(), "two-secret") {
		t.Fatalf("error leaks plaintext: %v", err)
	}
}

func TestSOPSWithoutAgeRecipientIsRefused(t *testing.T) {
	_, err := ParseSOPS("plain.yaml", []byte("psk: x\n"))
	if err == nil || !strings.Contains(err.Error(), "plain.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestRecipientCheckWithoutDecrypting(t *testing.T) {
	web, db := newHost(t), newHost(t)
	f, err := ParseSOPS("s.yaml", sopsEncrypt(t, "s.yaml", "psk: "+plaintextPSK+"\n", web.AgeRecipient))
	if err != nil {
		t.Fatal(err)
	}
	if !f.OpensFor([]string{web.AgeRecipient}) || f.OpensFor([]string{db.AgeRecipient, db.SSHToAge(t)}) {
		t.Fatal("SOPS recipient check wrong")
	}
	sshRec, _ := agessh.ParseRecipient(web.SSHPublic)
	a, err := ParseAge("p.age", ageEncrypt(t, plaintextPSK, sshRec))
	if err != nil {
		t.Fatal(err)
	}
	if opens, known := a.OpensFor([]string{web.SSHPublic}); !opens || !known {
		t.Fatalf("age file to web's SSH key: opens %v known %v", opens, known)
	}
	if opens, known := a.OpensFor([]string{db.SSHPublic}); opens || !known {
		t.Fatalf("age file to web's SSH key, checked for db: opens %v known %v", opens, known)
	}
}
