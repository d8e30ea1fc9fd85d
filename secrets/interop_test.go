package secrets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/test/secrettest"
)

// TestAgeCLIFilesDecryptOnTheRightHost: files made by the real age CLI
// (age -r to an age-keygen recipient, age -R to an SSH host key) decrypt
// with that host's keys and are refused on another host.
func TestAgeCLIFilesDecryptOnTheRightHost(t *testing.T) {
	ageBin := secrettest.Tool(t, "BOOTSYNC_AGE_DIR", "age-v1.3.2", "age")
	keygen := secrettest.Tool(t, "BOOTSYNC_AGE_DIR", "age-v1.3.2", "age-keygen")
	ctx := context.Background()
	dir := t.TempDir()
	web, db := newHost(t), newHost(t)
	secrettest.Run(t, dir, keygen, "-o", "web.key")
	rec := strings.TrimSpace(secrettest.Run(t, dir, keygen, "-y", "web.key"))
	writeFile(t, filepath.Join(dir, "plain"), plaintextPSK)
	writeFile(t, filepath.Join(dir, "ssh.pub"), web.SSHPublic+"\n")
	secrettest.Run(t, dir, ageBin, "-r", rec, "-o", "by-recipient.age", "plain")
	secrettest.Run(t, dir, ageBin, "-a", "-R", "ssh.pub", "-o", "by-ssh.age", "plain")
	secrettest.Run(t, dir, ageBin, "-r", web.SSHToAge(t), "-o", "by-ssh-to-age.age", "plain")
	cases := map[string]*Keyring{}
	k, err := LoadKeyring(ctx, []string{filepath.Join(dir, "web.key")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases["by-recipient.age"] = k
	cases["by-ssh.age"] = keyring(t, web, false)
	cases["by-ssh-to-age.age"] = keyring(t, web, false)
	for name, k := range cases {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseAge(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := k.DecryptAge(ctx, f, 1<<20)
		if err != nil || string(got) != plaintextPSK {
			t.Fatalf("%s on its host: %q, %v", name, got, err)
		}
		_, err = keyring(t, db, true).DecryptAge(ctx, f, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "not encrypted to any key of this host") {
			t.Fatalf("%s on another host: want a refusal, got %v", name, err)
		}
		assertNoPlaintext(t, "error", err.Error())
	}
}

// TestSOPSCLIFilesDecryptOnTheRightHost: files made by the real
// `sops encrypt --age` in every format decrypt with the host's age
// identity or SSH host key, and are refused on another host.
func TestSOPSCLIFilesDecryptOnTheRightHost(t *testing.T) {
	sopsBin := secrettest.Tool(t, "BOOTSYNC_SOPS_DIR", "sops-v3.13.3", "sops")
	ctx := context.Background()
	dir := t.TempDir()
	web, db := newHost(t), newHost(t)
	docs := map[string]string{
		"wifi.yaml": "wifi:\n  ssid: home\n  psk: " + plaintextPSK + "\n",
		"wifi.json": `{"wifi": {"psk": "` + plaintextPSK + `"}}`,
		"wifi.env":  "PSK=" + plaintextPSK + "\n",
		"wifi.ini":  "[wifi]\npsk = " + plaintextPSK + "\n",
		"wifi.conf": "psk=" + plaintextPSK + "\n",
	}
	for name, plain := range docs {
		for _, byIdentity := range []bool{true, false} {
			rec := web.SSHToAge(t)
			if byIdentity {
				rec = web.AgeRecipient
			}
			writeFile(t, filepath.Join(dir, name), plain)
			enc := secrettest.Run(t, dir, sopsBin, "encrypt", "--age", rec, name)
			assertNoPlaintext(t, "sops output", enc)
			f, err := ParseSOPS(name, []byte(enc))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out, _, err := keyring(t, web, byIdentity).DecryptSOPS(ctx, f, 1<<20)
			if err != nil || !strings.Contains(string(out), plaintextPSK) {
				t.Fatalf("%s (identity %v) on its host: %q, %v", name, byIdentity, out, err)
			}
			_, _, err = keyring(t, db, true).DecryptSOPS(ctx, f, 1<<20)
			if err == nil || !strings.Contains(err.Error(), "not encrypted to any key of this host") {
				t.Fatalf("%s on another host: want a refusal, got %v", name, err)
			}
			assertNoPlaintext(t, "error", err.Error())
		}
	}
}
