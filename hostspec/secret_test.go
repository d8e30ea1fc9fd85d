package hostspec

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bootsync/bootsync/secrets"
	"github.com/bootsync/bootsync/test/secrettest"
)

const secretPSK = "hunter2-correct-horse-91"

// secretFleet is a fleet where web-01 uses a SOPS file (file and
// template) and an age file, encrypted by the real CLIs to web's keys.
type secretFleet struct {
	fs       fstest.MapFS
	web, db  secrettest.Host
	hostFile string
}

func newSecretFleet(t *testing.T) *secretFleet {
	t.Helper()
	dir := t.TempDir()
	sf := &secretFleet{web: secrettest.NewHost(t, filepath.Join(dir, "web")), db: secrettest.NewHost(t, filepath.Join(dir, "db"))}
	wifi := secrettest.SOPSEncrypt(t, dir, "wifi.yaml", "wifi:\n  ssid: home\n  psk: "+secretPSK+"\n", sf.web.AgeRecipient)
	token := secrettest.AgeEncrypt(t, dir, "token="+secretPSK+"\n", sf.web.SSHPublic)
	sf.hostFile = header + `kind: Host
metadata: {name: web-01}
spec:
  secrets:
    recipients: [` + sf.web.AgeRecipient + `, "` + sf.web.SSHPublic + `"]
  etc:
    - path: /etc/wifi.yaml
      sops: secrets/wifi.yaml
    - path: /etc/NetworkManager/system-connections/home.nmconnection
      sops: secrets/wifi.yaml
      template: true
      content: |
        ssid={{ .Secrets.wifi.ssid }}
        psk={{ .Secrets.wifi.psk }}
      onChange: {reload: [NetworkManager.service]}
    - path: /etc/token.env
      age: secrets/token.age
      mode: "0640"
`
	sf.fs = files(
		"fleet.yaml", header+"kind: Fleet\nmetadata: {name: f}\nspec: {image: registry.example.com/os:1}\n",
		"hosts/web-01.yaml", sf.hostFile,
		"secrets/wifi.yaml", string(wifi),
		"secrets/token.age", string(token),
	)
	return sf
}

func TestSecretEntriesResolveWithoutDecrypting(t *testing.T) {
	sf := newSecretFleet(t)
	r := mustLoad(t, sf.fs)
	spec := mustResolve(t, r, "web-01", nil)
	if len(spec.Warnings) != 0 {
		t.Errorf("warnings: %v", spec.Warnings)
	}
	byPath := map[string]EtcFile{}
	for _, f := range spec.Etc {
		byPath[f.Path] = f
		if f.Secret == nil {
			t.Fatalf("%s: no secret reference", f.Path)
		}
		if len(f.Content) != 0 || f.SHA256 != "" {
			t.Errorf("%s: resolved spec carries content or a digest", f.Path)
		}
	}
	w := byPath["/etc/wifi.yaml"]
	if w.Mode != 0o600 || w.Secret.Format != "sops-yaml" || !strings.HasPrefix(w.Secret.Fingerprint, "sops:") || w.Secret.File != "secrets/wifi.yaml" {
		t.Errorf("wifi.yaml: %+v mode %s", w.Secret, w.Mode)
	}
	nm := byPath["/etc/NetworkManager/system-connections/home.nmconnection"]
	if nm.Secret.Preview != "ssid=(secret)\npsk=(secret)\n" || nm.Mode != 0o600 {
		t.Errorf("template preview %q mode %s", nm.Secret.Preview, nm.Mode)
	}
	if tok := byPath["/etc/token.env"]; tok.Mode != 0o640 || tok.Secret.Format != "age" {
		t.Errorf("token.env: %+v mode %s", tok.Secret, tok.Mode)
	}
	out, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	secrettest.AssertNoPlaintext(t, "render JSON", string(out), secretPSK)
}

func TestSecretsDecryptOnTheirHostOnly(t *testing.T) {
	sf := newSecretFleet(t)
	ctx := context.Background()
	spec := mustResolve(t, mustLoad(t, sf.fs), "web-01", nil)
	for _, tc := range []struct {
		name     string
		ids, ssh []string
	}{
		{"age identity and SSH host key", []string{sf.web.IdentityFile}, []string{sf.web.SSHKeyFile}},
	} {
		kr, err := secrets.LoadKeyring(ctx, tc.ids, tc.ssh)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := spec.Decrypted(ctx, kr)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := map[string]string{
			"/etc/wifi.yaml": "psk: " + secretPSK,
			"/etc/NetworkManager/system-connections/home.nmconnection": "ssid=home\npsk=" + secretPSK + "\n",
			"/etc/token.env": "token=" + secretPSK + "\n",
		}
		for _, f := range dec.Etc {
			if !strings.Contains(string(f.Content), want[f.Path]) || !f.Secret.Decrypted {
				t.Errorf("%s: %s = %q", tc.name, f.Path, f.Content)
			}
		}
		out, _ := json.Marshal(dec)
		secrettest.AssertNoPlaintext(t, "decrypted spec's JSON", string(out), secretPSK)
	}
	// The resolved spec is untouched: the agent decrypts a copy.
	for _, f := range spec.Etc {
		if len(f.Content) != 0 {
			t.Errorf("%s: Decrypted changed the resolved spec", f.Path)
		}
	}
	// The age identity alone cannot open the file for the SSH key: the
	// whole spec is refused, naming the file and entry.
	kr, _ := secrets.LoadKeyring(ctx, []string{sf.web.IdentityFile}, nil)
	if _, err := spec.Decrypted(ctx, kr); err == nil || !strings.Contains(err.Error(), "secrets/token.age") {
		t.Errorf("age identity only: %v", err)
	}
	other, _ := secrets.LoadKeyring(ctx, []string{sf.db.IdentityFile}, []string{sf.db.SSHKeyFile})
	dec, err := spec.Decrypted(ctx, other)
	var se *SecretError
	if dec != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "not encrypted to any key of this host") {
		t.Fatalf("another host: %v, %v", dec, err)
	}
	secrettest.AssertNoPlaintext(t, "refusal", err.Error(), secretPSK)
}

func TestSecretsSSHHostKeyOnly(t *testing.T) {
	// sops --age with the ssh-to-age recipient of the host key, and
	// age -R to the SSH key: the SSH host key alone opens both.
	dir := t.TempDir()
	web := secrettest.NewHost(t, filepath.Join(dir, "web"))
	fsys := files(
		"fleet.yaml", header+"kind: Fleet\nmetadata: {name: f}\nspec: {image: registry.example.com/os:1}\n",
		"hosts/web-01.yaml", header+`kind: Host
metadata: {name: web-01}
spec:
  secrets: {recipients: ["`+web.SSHPublic+`"]}
  etc:
    - {path: /etc/a.env, sops: s/a.env}
    - {path: /etc/b.key, age: s/b.age}
`,
		"s/a.env", string(secrettest.SOPSEncrypt(t, dir, "a.env", "PSK="+secretPSK+"\n", web.SSHToAge(t))),
		"s/b.age", string(secrettest.AgeEncrypt(t, dir, secretPSK, web.SSHPublic)),
	)
	r := mustLoad(t, fsys)
	if warns, err := r.ValidateReport(context.Background()); err != nil || len(warns) != 0 {
		t.Fatalf("validate: %v, warnings %v", err, warns)
	}
	spec := mustResolve(t, r, "web-01", nil)
	kr, err := secrets.LoadKeyring(context.Background(), nil, []string{web.SSHKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := spec.Decrypted(context.Background(), kr)
	if err != nil {
		t.Fatal(err)
	}
	if string(dec.Etc[0].Content) != "PSK="+secretPSK+"\n" || string(dec.Etc[1].Content) != secretPSK {
		t.Errorf("contents %q %q", dec.Etc[0].Content, dec.Etc[1].Content)
	}
}

func TestValidateCatchesSecretNotEncryptedToHost(t *testing.T) {
	sf := newSecretFleet(t)
	dir := t.TempDir()
	// db-01 is added, reusing the wifi secret, which was not re-encrypted
	// for it.
	dbFile := header + `kind: Host
metadata: {name: db-01}
spec:
  secrets:
    recipients: [` + sf.db.AgeRecipient + `]
  etc:
    - path: /etc/wifi.yaml
      sops: secrets/wifi.yaml
    - path: /etc/x25519.key
      age: secrets/x.age
`
	fsys := with(sf.fs, "hosts/db-01.yaml", dbFile,
		"secrets/x.age", string(secrettest.AgeEncrypt(t, dir, secretPSK, sf.db.AgeRecipient)))
	warns, err := mustLoad(t, fsys).ValidateReport(context.Background())
	e := findProblem(t, err, "hosts/db-01.yaml", lineOf(t, dbFile, "path: /etc/wifi.yaml"), "etc[/etc/wifi.yaml]", "secret secrets/wifi.yaml is not encrypted to this host")
	if e.Host != "db-01" || !strings.Contains(e.Msg, sf.web.AgeRecipient) || !strings.Contains(e.Msg, sf.db.AgeRecipient) {
		t.Errorf("problem: %v", e)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Msg, "anonymous (X25519)") || warns[0].Line != lineOf(t, dbFile, "path: /etc/x25519.key") {
		t.Errorf("warnings: %v", warns)
	}
	secrettest.AssertNoPlaintext(t, "validate", err.Error(), secretPSK)
}

func TestSecretSchemaProblems(t *testing.T) {
	sf := newSecretFleet(t)
	look := sf.web.AgeRecipient[:len(sf.web.AgeRecipient)-1] + flip(sf.web.AgeRecipient[len(sf.web.AgeRecipient)-1])
	for _, tc := range []struct {
		name, etc, field, msg string
	}{
		{"both", "{path: /etc/a, sops: secrets/wifi.yaml, age: secrets/token.age}", "spec.etc[0]", "sops and age are both set"},
		{"no path", "{sops: secrets/wifi.yaml}", "spec.etc[0]", "needs path"},
		{"content without template", "{path: /etc/a, sops: secrets/wifi.yaml, content: x}", "spec.etc[0]", "set template: true"},
		{"age with template", "{path: /etc/a, age: secrets/token.age, template: true, content: x}", "spec.etc[0]", "age: is the whole file"},
		{"absent", "{path: /etc/a, sops: secrets/wifi.yaml, absent: true}", "spec.etc[0]", "cannot be set with it"},
		{"escape", "{path: /etc/a, sops: ../secret.yaml}", "spec.etc[0].sops", "escapes the repository"},
		{"typo", "{path: /etc/a, sosp: secrets/wifi.yaml}", "spec.etc[0]", `did you mean "sops"`},
		{"missing", "{path: /etc/a, sops: secrets/nope.yaml}", "spec.etc[0].sops", "no such file"},
		{"not sops", "{path: /etc/a, sops: secrets/plain.yaml}", "spec.etc[0].sops", "not a SOPS file"},
		{"tampered age", "{path: /etc/a, age: secrets/plain.yaml}", "spec.etc[0].age", "not an age file"},
		{"look-alike recipient", "{path: /etc/a, sops: secrets/wifi.yaml}\n  secrets: {recipients: [" + look + "]}", "spec.secrets.recipients[0]", "not an age X25519 recipient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := header + "kind: Host\nmetadata: {name: web-01}\nspec:\n  etc:\n    - " + tc.etc + "\n"
			_, err := Load(context.Background(), with(sf.fs, "hosts/web-01.yaml", host, "secrets/plain.yaml", "a: 1\n"))
			if err == nil {
				t.Fatal("loaded")
			}
			found := false
			for _, e := range problems(t, err) {
				if e.File == "hosts/web-01.yaml" && e.Line > 0 && strings.Contains(e.Field, tc.field) && strings.Contains(e.Msg, tc.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s: …%s…; got %v", tc.field, tc.msg, err)
			}
		})
	}
}

func flip(c byte) string {
	if c == 'q' {
		return "p"
	}
	return "q"
}

// TestHostileSecretFiles: a secret path that is a symbolic link out of the
// repository, and an encrypted file over limits.fileSize, are refused at
// the entry's line; nothing is decrypted or read beyond the limit.
func TestHostileSecretFiles(t *testing.T) {
	sf := newSecretFleet(t)
	host := header + "kind: Host\nmetadata: {name: web-01}\nspec:\n  etc:\n    - {path: /etc/a, sops: secrets/link.yaml}\n    - {path: /etc/b, age: secrets/huge.age}\n"
	fsys := with(sf.fs, "hosts/web-01.yaml", host,
		"fleet.yaml", header+"kind: Fleet\nmetadata: {name: f}\nspec: {image: registry.example.com/os:1}\nlimits: {fileSize: 2Ki}\n",
		"secrets/huge.age", strings.Repeat("x", 8<<10))
	fsys["secrets/link.yaml"] = &fstest.MapFile{Data: []byte("../../etc/shadow"), Mode: fs.ModeSymlink | 0o777}
	_, err := Load(context.Background(), fsys)
	if err == nil {
		t.Fatal("loaded")
	}
	list := problems(t, err)
	var escape, huge bool
	for _, e := range list {
		escape = escape || e.Field == "spec.etc[0].sops" && e.Line == lineOf(t, host, "link.yaml") && strings.Contains(e.Msg, "outside")
		huge = huge || e.Field == "spec.etc[1].age" && e.Line == lineOf(t, host, "huge.age") && e.Limit == "fileSize"
	}
	if !escape || !huge {
		t.Errorf("escape %v, huge %v; got %v", escape, huge, list)
	}
}
