package gitserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer serves the bare repositories under Root over SSH: it accepts
// only the public keys it was told about and runs the real git-upload-pack
// (fetch only; pushing is done on the file system by tests).
type SSHServer struct {
	root     string
	hostKey  gossh.Signer
	srv      *gliderssh.Server
	addr     string
	done     chan struct{}
	sessions atomic.Int64

	mu         sync.Mutex
	authorized []gossh.PublicKey
}

// NewSSH starts an SSH git server for the repositories under root on
// 127.0.0.1 with a fresh ed25519 host key, and stops it when the test ends.
func NewSSH(t testing.TB, root string) *SSHServer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{root: root, hostKey: hostKey, done: make(chan struct{})}
	s.srv = &gliderssh.Server{
		Handler:          s.handle,
		HostSigners:      []gliderssh.Signer{hostKey},
		PublicKeyHandler: s.allowKey,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns ErrServerClosed on Close
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-s.done
	})
	return s
}

// Addr is the server's host:port.
func (s *SSHServer) Addr() string { return s.addr }

// URL is the ssh:// URL of the repository at repo (relative to the root).
func (s *SSHServer) URL(repo string) string {
	return "ssh://git@" + s.addr + "/" + strings.TrimPrefix(repo, "/")
}

// KnownHostsLine is the known_hosts line that trusts this server's host key.
func (s *SSHServer) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, s.hostKey.PublicKey())
}

// WriteKnownHosts writes a known_hosts file trusting this server into dir
// and returns its path.
func (s *SSHServer) WriteKnownHosts(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(p, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Authorize lets clients holding the private half of key log in.
func (s *SSHServer) Authorize(key gossh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorized = append(s.authorized, key)
}

// Sessions counts the SSH sessions (commands) clients ran.
func (s *SSHServer) Sessions() int { return int(s.sessions.Load()) }

func (s *SSHServer) allowKey(_ gliderssh.Context, key gliderssh.PublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.authorized {
		if gliderssh.KeysEqual(k, key) {
			return true
		}
	}
	return false
}

func (s *SSHServer) handle(sess gliderssh.Session) {
	s.sessions.Add(1)
	args := sess.Command()
	if len(args) != 2 || args[0] != "git-upload-pack" {
		fmt.Fprintf(sess.Stderr(), "only git-upload-pack is served, not %q\n", sess.RawCommand())
		_ = sess.Exit(128)
		return
	}
	rel := path.Clean("/" + args[1])
	dir := filepath.Join(s.root, filepath.FromSlash(rel))
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(sess.Stderr(), "fatal: '%s' does not appear to be a git repository\n", args[1])
		_ = sess.Exit(128)
		return
	}
	cmd := exec.CommandContext(sess.Context(), "git-upload-pack", "--strict", dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	cmd.Stdout = sess
	cmd.Stderr = sess.Stderr()
	// Copy stdin ourselves: exec would wait for the copy to end, and a client
	// that keeps the channel open after upload-pack exits would hang Wait.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		_ = sess.Exit(128)
		return
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(sess.Stderr(), "start git-upload-pack: %v\n", err)
		_ = sess.Exit(128)
		return
	}
	go func() {
		_, _ = io.Copy(stdin, sess)
		_ = stdin.Close()
	}()
	code := 0
	if err := cmd.Wait(); err != nil {
		code = 128
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() > 0 {
			code = exit.ExitCode()
		}
	}
	_ = sess.Exit(code)
}

// NewClientKey writes a fresh passphrase-less ed25519 private key in OpenSSH
// format to dir/id_ed25519 and returns its path and public key.
func NewClientKey(t testing.TB, dir string) (string, gossh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sshPub
}
