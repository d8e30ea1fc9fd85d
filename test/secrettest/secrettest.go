// Package secrettest gives tests real secrets: key material of simulated
// hosts (an age identity file and an OpenSSH Ed25519 host key) and files
// encrypted by the real `sops` and `age` CLIs, which .ci/run installs.
package secrettest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"filippo.io/edwards25519"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// Tool finds a real CLI: env (BOOTSYNC_AGE_DIR, BOOTSYNC_SOPS_DIR) or the
// directory .ci/run installs it into. Missing, the test skips, except
// under CI=true where it fails.
func Tool(t testing.TB, env, sub, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		home, _ := os.UserHomeDir()
		p = filepath.Join(home, ".cache", "bootsync", "tools", sub)
	}
	p = filepath.Join(p, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found at %s (set %s; .ci/run installs it)", name, p, env)
		}
		t.Skipf("%s not found at %s (set %s; .ci/run installs it)", name, p, env)
	}
	return p
}

// SOPS is the real sops CLI.
func SOPS(t testing.TB) string { return Tool(t, "BOOTSYNC_SOPS_DIR", "sops-v3.13.3", "sops") }

// Age is the real age CLI.
func Age(t testing.TB) string { return Tool(t, "BOOTSYNC_AGE_DIR", "age-v1.3.2", "age") }

// Host is a simulated host's key material on disk.
type Host struct {
	IdentityFile string // age identity (age-keygen format)
	AgeRecipient string // its age1… recipient
	SSHKeyFile   string // OpenSSH Ed25519 private host key
	SSHPublic    string // authorized_keys form, no comment
}

// NewHost writes a fresh age identity and SSH host key under dir.
func NewHost(t testing.TB, dir string) Host {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	h := Host{IdentityFile: filepath.Join(dir, "age.key"), AgeRecipient: id.Recipient().String(), SSHKeyFile: filepath.Join(dir, "ssh_host_ed25519_key")}
	write(t, h.IdentityFile, "# test host key\n"+id.String()+"\n")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	write(t, h.SSHKeyFile, string(pem.EncodeToMemory(blk)))
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	h.SSHPublic = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	return h
}

// SSHToAge is the age1… recipient ssh-to-age derives from the host's SSH
// key.
func (h Host) SSHToAge(t testing.TB) string {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.SSHPublic))
	if err != nil {
		t.Fatalf("parse %s: %v", h.SSHPublic, err)
	}
	cpk, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		t.Fatalf("%s is not an Ed25519 key", h.SSHPublic)
	}
	pub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		t.Fatalf("%s is not an Ed25519 key", h.SSHPublic)
	}
	return SSHToAgeRecipient(t, pub)
}

// SSHToAgeRecipient converts an Ed25519 public key the way ssh-to-age does:
// the birationally equivalent Montgomery point, bech32 with HRP "age".
// It is computed from the public key alone, independently of the code
// under test, which derives from the private key.
func SSHToAgeRecipient(t testing.TB, pub ed25519.PublicKey) string {
	t.Helper()
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := bech32.ConvertBits(p.BytesMontgomery(), 8, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := bech32.Encode("age", conv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SOPSEncrypt runs `sops encrypt --age <recipients>` on plain, written
// under dir with the given name (sops picks the format by name), and
// returns the encrypted file.
func SOPSEncrypt(t testing.TB, dir, name, plain string, recipients ...string) []byte {
	t.Helper()
	p := filepath.Join(dir, name)
	write(t, p, plain)
	defer os.Remove(p)
	return []byte(Run(t, dir, SOPS(t), "encrypt", "--age", strings.Join(recipients, ","), name))
}

// AgeEncrypt runs `age -r` (age1… recipients) or `age -R` (SSH keys) on
// plain and returns the binary age file.
func AgeEncrypt(t testing.TB, dir, plain string, recipients ...string) []byte {
	t.Helper()
	p := filepath.Join(dir, "age-plain")
	write(t, p, plain)
	defer os.Remove(p)
	args := []string{"-o", "-"}
	for i, r := range recipients {
		if strings.HasPrefix(r, "ssh-") {
			f := filepath.Join(dir, "age-ssh-recipient-"+string(rune('a'+i)))
			write(t, f, r+"\n")
			args = append(args, "-R", f)
			continue
		}
		args = append(args, "-r", r)
	}
	return []byte(Run(t, dir, Age(t), append(args, p)...))
}

// TamperSOPS edits an encrypted SOPS YAML or JSON file by hand, as
// someone without the key would: the first base64 character of the
// ciphertext of the value under key (a document key such as "psk", or
// "mac" for the file's MAC) is replaced by another one. The file still
// parses; only its ciphertext differs.
func TamperSOPS(t testing.TB, enc []byte, key string) []byte {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(\s*"?` + regexp.QuoteMeta(key) + `"?:\s*"?ENC\[AES256_GCM,data:)([A-Za-z0-9+/])`)
	m := re.FindSubmatchIndex(enc)
	if m == nil {
		t.Fatalf("no encrypted value under %q in:\n%s", key, enc)
	}
	out := append([]byte(nil), enc...)
	if out[m[4]] == 'A' {
		out[m[4]] = 'B'
	} else {
		out[m[4]] = 'A'
	}
	return out
}

// SOPSDecrypt runs the real `sops decrypt` on enc (written under dir as
// name) with the age identity file identity, and returns what it printed
// and whether it succeeded.
func SOPSDecrypt(t testing.TB, dir, name string, enc []byte, identity string) (string, error) {
	t.Helper()
	p := filepath.Join(dir, name)
	write(t, p, string(enc))
	defer os.Remove(p)
	cmd := exec.Command(SOPS(t), "decrypt", name)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+identity, "SOPS_AGE_KEY=", "SOPS_AGE_SSH_PRIVATE_KEY_FILE=/nonexistent")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AssertNoPlaintext fails the test when text (an output, a log, a status
// file, a metric) holds any of the secrets.
func AssertNoPlaintext(t testing.TB, what, text string, plaintexts ...string) {
	t.Helper()
	for _, p := range plaintexts {
		if p != "" && strings.Contains(text, p) {
			t.Errorf("%s holds the plaintext %q:\n%s", what, p, text)
		}
	}
}

// Run runs a CLI in dir and returns its standard output; a failure ends
// the test with its standard error.
func Run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	// Never let the CLIs find keys of the machine running the tests.
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE=/nonexistent", "SOPS_AGE_KEY=", "SOPS_AGE_SSH_PRIVATE_KEY_FILE=/nonexistent")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr)
	}
	return string(out)
}

func write(t testing.TB, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
