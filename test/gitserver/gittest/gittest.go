// Package gittest makes Git repositories for tests with the real git CLI:
// a working clone that commits files and pushes them to a bare repository
// (which a gitserver serves), commits signed by gpg with a throwaway key or
// by ssh-keygen with a throwaway SSH key, force-pushes and reverts.
//
// Every command runs with a hermetic environment: no system or global git
// configuration, a fixed identity, no prompts.
package gittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Identity used for every commit.
const (
	AuthorName  = "Fleet Tester"
	AuthorEmail = "tester@example.com"
)

// Env is the environment every git command of this package runs with.
func Env() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME="+AuthorName, "GIT_AUTHOR_EMAIL="+AuthorEmail,
		"GIT_COMMITTER_NAME="+AuthorName, "GIT_COMMITTER_EMAIL="+AuthorEmail,
	)
}

// Git runs git with args in dir and returns its trimmed standard output.
// extraEnv entries ("K=V") are added to Env().
func Git(t testing.TB, dir string, extraEnv []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(Env(), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s (in %s): %v\n%s%s", strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// Repo is a working clone of a bare repository ("origin") on local disk.
type Repo struct {
	t      testing.TB
	Dir    string // the working tree
	Origin string // path of the bare repository it pushes to
	Branch string // the branch commits go to, "main"
}

// NewRepo makes a working repository in a temporary directory whose origin
// is the bare repository at origin (e.g. gitserver.Server.InitBare). Commits
// go to branch main.
func NewRepo(t testing.TB, origin string) *Repo {
	t.Helper()
	dir := t.TempDir()
	Git(t, dir, nil, "init", "-q", "-b", "main")
	Git(t, dir, nil, "remote", "add", "origin", origin)
	return &Repo{t: t, Dir: dir, Origin: origin, Branch: "main"}
}

// Write writes files (slash-separated path relative to the repository →
// content) into the working tree. Remove deletes files.
func (r *Repo) Write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Remove deletes files from the working tree.
func (r *Repo) Remove(names ...string) {
	r.t.Helper()
	for _, name := range names {
		if err := os.Remove(filepath.Join(r.Dir, filepath.FromSlash(name))); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Commit writes files, commits everything in the working tree and returns
// the new commit id. The commit is not pushed.
func (r *Repo) Commit(msg string, files map[string]string) string {
	r.t.Helper()
	return r.commit(nil, nil, msg, files)
}

// CommitSigned is Commit with an OpenPGP signature made by gpg with key.
func (r *Repo) CommitSigned(key *GPGKey, msg string, files map[string]string) string {
	r.t.Helper()
	return r.commit([]string{"GNUPGHOME=" + key.Home},
		[]string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=" + key.Fingerprint}, msg, files)
}

// CommitSSHSigned is Commit with an SSH signature made by ssh-keygen with key.
func (r *Repo) CommitSSHSigned(key *SSHSigningKey, msg string, files map[string]string) string {
	r.t.Helper()
	return r.commit(nil, []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key.PrivateKeyFile}, msg, files)
}

func (r *Repo) commit(env, config []string, msg string, files map[string]string) string {
	r.t.Helper()
	r.Write(files)
	Git(r.t, r.Dir, nil, "add", "-A")
	args := append(slicesClone(config), "commit", "-q", "--allow-empty", "-m", msg)
	if len(config) > 0 {
		args = append(args, "-S")
	}
	Git(r.t, r.Dir, env, args...)
	return r.Rev("HEAD")
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// Rev resolves a revision in the working repository to a full commit id.
func (r *Repo) Rev(rev string) string {
	r.t.Helper()
	return Git(r.t, r.Dir, nil, "rev-parse", "--verify", rev+"^{commit}")
}

// Push pushes the branch to origin (a fast-forward push).
func (r *Repo) Push() {
	r.t.Helper()
	Git(r.t, r.Dir, nil, "push", "-q", "origin", r.Branch+":refs/heads/"+r.Branch)
}

// ForcePush resets the branch to rev (e.g. "HEAD~2" or a commit id) and
// force-pushes it: the rewound history a rollback attack would serve.
func (r *Repo) ForcePush(rev string) string {
	r.t.Helper()
	Git(r.t, r.Dir, nil, "reset", "-q", "--hard", rev)
	Git(r.t, r.Dir, nil, "push", "-q", "--force", "origin", r.Branch+":refs/heads/"+r.Branch)
	return r.Rev("HEAD")
}

// Revert commits the revert of rev (the supported way back) and returns the
// new commit id. The commit is not pushed.
func (r *Repo) Revert(rev string) string {
	r.t.Helper()
	Git(r.t, r.Dir, nil, "revert", "--no-edit", rev)
	return r.Rev("HEAD")
}

// Tag creates a lightweight (annotated == false) or annotated tag at HEAD
// and pushes it (with --force, so tags can be moved).
func (r *Repo) Tag(name string, annotated bool) {
	r.t.Helper()
	if annotated {
		Git(r.t, r.Dir, nil, "tag", "-f", "-a", "-m", "tag "+name, name)
	} else {
		Git(r.t, r.Dir, nil, "tag", "-f", name)
	}
	Git(r.t, r.Dir, nil, "push", "-q", "--force", "origin", "refs/tags/"+name)
}

// GPGKey is a throwaway OpenPGP signing key in its own GNUPGHOME.
type GPGKey struct {
	Home        string // GNUPGHOME holding the secret key
	Fingerprint string // 40 hex digits
	KeyID       string // last 16 hex digits of the fingerprint
	Public      string // ASCII-armored public key
}

// NewGPGKey generates an ed25519 signing key without passphrase with gpg in
// batch mode, in a fresh GNUPGHOME. The gpg-agent it starts is killed when
// the test ends.
func NewGPGKey(t testing.TB, name, email string) *GPGKey {
	t.Helper()
	// gpg-agent's socket lives in GNUPGHOME and socket paths are limited to
	// 108 bytes, so use a short directory rather than t.TempDir().
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GNUPGHOME="+home)
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = env
		_ = cmd.Run()
		_ = os.RemoveAll(home)
	})
	gpg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	uid := fmt.Sprintf("%s <%s>", name, email)
	gpg("--quick-generate-key", uid, "ed25519", "sign", "never")
	var fpr string
	for _, line := range strings.Split(gpg("--with-colons", "--list-secret-keys", email), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if len(fpr) != 40 {
		t.Fatalf("no fingerprint for the generated key %q", uid)
	}
	return &GPGKey{Home: home, Fingerprint: fpr, KeyID: fpr[24:], Public: gpg("--armor", "--export", fpr)}
}

// WritePublic writes the armored public key into dir and returns the path.
func (k *GPGKey) WritePublic(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, k.KeyID+".asc")
	if err := os.WriteFile(p, []byte(k.Public), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// SSHSigningKey is a throwaway SSH key for `gpg.format=ssh` commit signing.
type SSHSigningKey struct {
	PrivateKeyFile string          // OpenSSH private key, no passphrase
	PublicKey      gossh.PublicKey // its public half
	AuthorizedKey  string          // the public key as an authorized_keys line
}

// NewSSHSigningKey writes a fresh ed25519 key into a temporary directory.
func NewSSHSigningKey(t testing.TB) *SSHSigningKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "signing_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub)))
	// ssh-keygen -Y sign wants the public key next to the private one.
	if err := os.WriteFile(p+".pub", []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &SSHSigningKey{PrivateKeyFile: p, PublicKey: sshPub, AuthorizedKey: line}
}

// Files lists the files of commit rev in the working repository, sorted.
func (r *Repo) Files(rev string) []string {
	r.t.Helper()
	out := Git(r.t, r.Dir, nil, "ls-tree", "-r", "--name-only", rev)
	if out == "" {
		return nil
	}
	names := strings.Split(out, "\n")
	sort.Strings(names)
	return names
}
