package gitserver_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// gitCLI runs the real git client and returns its combined output and error.
func gitCLI(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(gittest.Env(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestHTTPServerServesCountsAndRestarts(t *testing.T) {
	srv := gitserver.New(t)
	repo := gittest.NewRepo(t, srv.InitBare("fleet.git"))
	head := repo.Commit("first", map[string]string{"fleet.yaml": "kind: Fleet\n"})
	repo.Push()

	// Protocol v0, as go-git speaks it: one GET of the advertisement. (git's
	// default v2 adds a POST for ls-refs.)
	out, err := gitCLI(t, nil, "-c", "protocol.version=0", "ls-remote", srv.URL("fleet.git"), "refs/heads/main")
	if err != nil {
		t.Fatalf("git ls-remote: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, head) {
		t.Fatalf("ls-remote = %q, want the pushed commit %s", out, head)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/fleet.git/info/refs" || reqs[0].Query != "service=git-upload-pack" || reqs[0].Status != 200 {
		t.Fatalf("requests = %v, want exactly one advertisement", reqs)
	}

	// A full clone through the CGI backend works and is counted.
	srv.Reset()
	if out, err := gitCLI(t, nil, "-c", "protocol.version=0", "clone", "-q", "--bare", srv.URL("fleet.git"), t.TempDir()+"/c.git"); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if got := srv.CountPath("/fleet.git/git-upload-pack"); got != 1 {
		t.Fatalf("clone made %d upload-pack requests, want 1 (%v)", got, srv.Requests())
	}

	srv.Stop()
	if out, err := gitCLI(t, nil, "ls-remote", srv.URL("fleet.git")); err == nil {
		t.Fatalf("ls-remote against a stopped server succeeded: %s", out)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := gitCLI(t, nil, "ls-remote", srv.URL("fleet.git")); err != nil {
		t.Fatalf("ls-remote after restart on the same port: %v\n%s", err, out)
	}
}

func TestHTTPServerBasicAuth(t *testing.T) {
	srv := gitserver.New(t, gitserver.WithBasicAuth("fleet", "s3cret-pass"))
	repo := gittest.NewRepo(t, srv.InitBare("fleet.git"))
	repo.Commit("first", map[string]string{"a": "1"})
	repo.Push()

	if out, err := gitCLI(t, nil, "ls-remote", srv.URL("fleet.git")); err == nil {
		t.Fatalf("ls-remote without credentials succeeded: %s", out)
	}
	if reqs := srv.Requests(); len(reqs) == 0 || reqs[0].Status != 401 {
		t.Fatalf("requests = %v, want a 401", reqs)
	}
	if out, err := gitCLI(t, nil, "ls-remote", srv.URLWithPassword("fleet.git", "fleet", "wrong")); err == nil {
		t.Fatalf("ls-remote with a wrong password succeeded: %s", out)
	}
	if out, err := gitCLI(t, nil, "ls-remote", srv.URLWithPassword("fleet.git", "fleet", "s3cret-pass")); err != nil {
		t.Fatalf("ls-remote with the right password: %v\n%s", err, out)
	}
}

func TestSSHServerChecksKeysAndServesUploadPack(t *testing.T) {
	root := t.TempDir()
	srv := gitserver.NewSSH(t, root)
	repo := gittest.NewRepo(t, gitserver.InitBare(t, root+"/fleet.git"))
	head := repo.Commit("first", map[string]string{"a": "1"})
	repo.Push()

	dir := t.TempDir()
	keyFile, pub := gitserver.NewClientKey(t, dir)
	knownHosts := srv.WriteKnownHosts(t, dir)
	sshCmd := func(key string) []string {
		return []string{"GIT_SSH_COMMAND=ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes" +
			" -o UserKnownHostsFile=" + knownHosts + " -i " + key}
	}

	if out, err := gitCLI(t, sshCmd(keyFile), "ls-remote", srv.URL("fleet.git")); err == nil {
		t.Fatalf("ls-remote with an unauthorized key succeeded: %s", out)
	}
	srv.Authorize(pub)
	out, err := gitCLI(t, sshCmd(keyFile), "ls-remote", srv.URL("fleet.git"), "refs/heads/main")
	if err != nil || !strings.HasPrefix(out, head) {
		t.Fatalf("ls-remote over ssh = %q, %v; want %s", out, err, head)
	}
	if out, err := gitCLI(t, sshCmd(keyFile), "clone", "-q", "--bare", srv.URL("fleet.git"), t.TempDir()+"/c.git"); err != nil {
		t.Fatalf("clone over ssh: %v\n%s", err, out)
	}
	if out, err := gitCLI(t, sshCmd(keyFile), "ls-remote", srv.URL("missing.git")); err == nil {
		t.Fatalf("ls-remote of a missing repository succeeded: %s", out)
	}
}

func TestGPGSignedCommitsVerifyWithGit(t *testing.T) {
	srv := gitserver.New(t)
	repo := gittest.NewRepo(t, srv.InitBare("fleet.git"))
	key := gittest.NewGPGKey(t, "Signer", "signer@example.com")
	signed := repo.CommitSigned(key, "signed", map[string]string{"a": "1"})
	out := gittest.Git(t, repo.Dir, []string{"GNUPGHOME=" + key.Home}, "log", "-1", "--format=%G? %GF", signed)
	if out != "G "+key.Fingerprint {
		t.Fatalf("git log signature status = %q, want a good signature by %s", out, key.Fingerprint)
	}

	sshKey := gittest.NewSSHSigningKey(t)
	sshSigned := repo.CommitSSHSigned(sshKey, "ssh signed", map[string]string{"b": "2"})
	raw := gittest.Git(t, repo.Dir, nil, "cat-file", "commit", sshSigned)
	if !strings.Contains(raw, "-----BEGIN SSH SIGNATURE-----") {
		t.Fatalf("commit has no SSH signature:\n%s", raw)
	}
	if _, err := os.Stat(key.Home); err != nil {
		t.Fatal(err)
	}
}

func TestTLSServerNeedsItsCA(t *testing.T) {
	s := gitserver.New(t, gitserver.WithTLS())
	s.InitBare("fleet.git")
	if !strings.HasPrefix(s.URL("fleet.git"), "https://127.0.0.1:") {
		t.Fatalf("URL = %s", s.URL("fleet.git"))
	}
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "wrong.pem")
	if err := os.WriteFile(good, s.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, gitserver.NewTestCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	lsRemote := func(ca string) error {
		cmd := exec.Command("git", "ls-remote", s.URL("fleet.git"))
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_SSL_CAINFO="+ca)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := lsRemote(good); err != nil {
		t.Fatalf("git ls-remote trusting the server's CA: %v", err)
	}
	if err := lsRemote(wrong); err == nil {
		t.Fatal("git ls-remote trusting an unrelated CA succeeded")
	}
}
