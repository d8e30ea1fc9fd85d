package e2e

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/secrettest"
)

// secretHost is a simulated host whose keys live in its root: an age
// identity (named in its config) and an SSH host key at the standard path
// (the default secrets.sshHostKeys). Its agent, when it runs, passes once
// (the interval is 1h) and serves metrics on metricsAddr ("": none).
func secretHost(t *testing.T, f *fleettest.Fleet, name, image, metricsAddr string) (*fleettest.Host, secrettest.Host) {
	t.Helper()
	keys := secrettest.NewHost(t, filepath.Join(t.TempDir(), name))
	h := f.NewHost(name, image, hostOptions{Metrics: metricsAddr, Interval: "1h",
		ExtraConfig: "secrets:\n  ageIdentityFiles: [" + keys.IdentityFile + "]\n"})
	sshDir := filepath.Join(h.Sim.Root, "etc", "ssh")
	if err := os.MkdirAll(sshDir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keys.SSHKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sshDir, "ssh_host_ed25519_key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	return h, keys
}

// fakeSystemctl records onChange actions; it goes first on the pass's PATH.
func fakeSystemctl(t *testing.T, h *fleettest.Host) (env []string, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "systemctl.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Sim.Env() {
		if p, ok := strings.CutPrefix(e, "PATH="); ok {
			return []string{"PATH=" + dir + string(os.PathListSeparator) + p}, log
		}
	}
	t.Fatal("no PATH in the simulated host's environment")
	return nil, ""
}

// TestSecretRotatedInGitReachesTheHost: a SOPS file (rendered through a
// template, opened with the host's age identity) and an age file (opened
// with its SSH host key), both made by the real CLIs, are written 0600 and
// run their onChange; re-encrypted with new values in Git, they reach the
// host again, by `bootsync reconcile` and then by `bootsync agent`.
// Another host, whose keys the files are not for, refuses the whole pass
// (reconcile and agent alike) and writes nothing. No output, log, metrics
// text, status, journal or state file holds a plaintext.
func TestSecretRotatedInGitReachesTheHost(t *testing.T) {
	s := newSecretFleet(t)
	const psk1, psk2, psk3 = "first-psk-4471", "second-psk-9902", "third-psk-3158"
	const tok1, tok2, tok3 = "first-token-1188", "second-token-6650", "third-token-2794"

	s.commit("secrets v1", psk1, tok1)
	if r := s.pass(s.web); r.Exit != 0 {
		t.Fatalf("web-01: %s", r)
	}
	s.checkWebSecrets(psk1, tok1)
	if calls := readLog(t, s.log); !strings.Contains(calls, "reload NetworkManager.service") || !strings.Contains(calls, "restart api.service") {
		t.Fatalf("onChange after the first write: %q", calls)
	}

	s.otherHostRefuses()

	// Rotation: both files re-encrypted with new values.
	s.commit("rotate secrets", psk2, tok2)
	s.rotationReachesTheHost(psk2, tok2)
	// Again, and this time the agent applies it.
	s.commit("rotate secrets again", psk3, tok3)
	s.agentAppliesRotation(psk3, tok3)

	s.assertNoPlaintextAnywhere(psk1, psk2, psk3, tok1, tok2, tok3)
}

// secretFleet is the fleet of TestSecretRotatedInGitReachesTheHost:
// web-01 holds the keys its secrets are encrypted to, db-01 does not.
// Every output, agent log and metrics text the test sees is kept in
// outputs, to be searched for plaintexts at the end.
type secretFleet struct {
	t               *testing.T
	f               *fleettest.Fleet
	v1              string
	web, db         *fleettest.Host
	webKeys         secrettest.Host
	webAddr, dbAddr string // where their agents serve metrics
	encDir          string
	env             []string // the fake systemctl first on PATH
	log             string   // its calls
	outputs         []string
}

func newSecretFleet(t *testing.T) *secretFleet {
	t.Helper()
	f := newFleet(t)
	s := &secretFleet{t: t, f: f, v1: f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true),
		webAddr: freeAddr(t), dbAddr: freeAddr(t), encDir: t.TempDir()}
	s.web, s.webKeys = secretHost(t, f, "web-01", s.v1, s.webAddr)
	s.db, _ = secretHost(t, f, "db-01", s.v1, s.dbAddr)
	s.env, s.log = fakeSystemctl(t, s.web)
	return s
}

// commit puts web-01's Wi-Fi PSK (a SOPS file, read by a template) and API
// token (an age file to its SSH host key) in Git, both encrypted afresh
// by the real CLIs. db-01 declares no recipient: validate only warns, and
// its agent finds out that it cannot open the token.
func (s *secretFleet) commit(msg, psk, tok string) {
	s.t.Helper()
	hostFile := hostYAML("web-01", `spec:
  secrets: {recipients: [`+s.webKeys.AgeRecipient+`, "`+s.webKeys.SSHPublic+`"]}
  etc:
    - path: /etc/NetworkManager/system-connections/home.nmconnection
      sops: secrets/wifi.yaml
      template: true
      content: "[wifi-security]\npsk={{ .Secrets.wifi.psk }}\n"
      onChange: {reload: [NetworkManager.service]}
    - path: /etc/api/token
      age: secrets/token.age
      onChange: {restart: [api.service]}
`)
	dbFile := hostYAML("db-01", `spec:
  etc:
    - {path: /etc/api/token, age: secrets/token.age}
`)
	s.f.Commit(msg, map[string]string{
		"fleet.yaml":        s.f.FleetYAML(s.v1, ""),
		"hosts/web-01.yaml": hostFile,
		"hosts/db-01.yaml":  dbFile,
		"secrets/wifi.yaml": string(secrettest.SOPSEncrypt(s.t, s.encDir, "wifi.yaml", "wifi:\n  psk: "+psk+"\n", s.webKeys.AgeRecipient)),
		"secrets/token.age": string(secrettest.AgeEncrypt(s.t, s.encDir, tok+"\n", s.webKeys.SSHPublic)),
	})
}

// pass runs one `bootsync reconcile` on h and keeps what it printed.
func (s *secretFleet) pass(h *fleettest.Host) fleettest.PassResult {
	s.t.Helper()
	r := h.Pass(s.env...)
	s.outputs = append(s.outputs, r.Stdout, r.Stderr)
	return r
}

// agentPass runs `bootsync agent` on h until its metrics on addr hold the
// line sample, then stops it. The metrics text and the agent's log join
// the outputs; the metrics text is returned.
func (s *secretFleet) agentPass(h *fleettest.Host, addr, sample string) string {
	t := s.t
	t.Helper()
	a := startAgent(t, h, s.env...)
	var body string
	waitFor(t, sample+" in the metrics of "+h.Name, func() bool {
		body = metricsText(addr)
		return strings.Contains(body, "\n"+sample+"\n")
	})
	a.signal(t, syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("%s: the agent exited with %v after SIGTERM\n%s", h.Name, err, a.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the agent did not stop on SIGTERM", h.Name)
	}
	s.outputs = append(s.outputs, body, a.log())
	return body
}

// metricsText is what an agent serves on addr/metrics ("" while it
// cannot be read).
func metricsText(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// checkWebSecrets: web-01's secret files hold psk and tok, mode 0600.
func (s *secretFleet) checkWebSecrets(psk, tok string) {
	s.t.Helper()
	checkSecretFile(s.t, s.web, "NetworkManager/system-connections/home.nmconnection", "[wifi-security]\npsk="+psk+"\n")
	checkSecretFile(s.t, s.web, "api/token", tok+"\n")
}

// otherHostRefuses: db-01, whose keys the token is not for, refuses the
// whole pass with reason secret, by `bootsync reconcile` and by
// `bootsync agent` (its metrics count a secret error), and writes
// nothing (not even motd).
func (s *secretFleet) otherHostRefuses() {
	t := s.t
	t.Helper()
	if r := s.pass(s.db); r.Exit == 0 {
		t.Fatalf("db-01 opened a secret that is not for it: %s", r)
	}
	s.checkDBRefused()
	s.agentPass(s.db, s.dbAddr, `bootsync_errors_total{reason="secret"} 1`)
	s.checkDBRefused()
}

func (s *secretFleet) checkDBRefused() {
	t := s.t
	t.Helper()
	st := s.db.Status()
	if st.LastError == nil || st.LastError.Reason != reconcile.ReasonSecret || !strings.Contains(st.LastError.Message, "secrets/token.age") ||
		!strings.Contains(st.LastError.Message, "not encrypted to any key of this host") {
		t.Fatalf("db-01 status error: %+v", st.LastError)
	}
	for _, p := range []string{"motd", "api/token"} {
		if _, ok := s.db.Etc(p); ok {
			t.Errorf("db-01: /etc/%s was written by a refused pass", p)
		}
	}
}

// rotationReachesTheHost: `bootsync reconcile` writes the rotated values
// and runs their onChange once; a further pass changes nothing and runs
// nothing.
func (s *secretFleet) rotationReachesTheHost(psk, tok string) {
	t := s.t
	t.Helper()
	before := strings.Count(readLog(t, s.log), "restart api.service")
	if r := s.pass(s.web); r.Exit != 0 {
		t.Fatalf("web-01 after the rotation: %s", r)
	}
	s.checkWebSecrets(psk, tok)
	calls := readLog(t, s.log)
	if strings.Count(calls, "restart api.service") != before+1 || strings.Count(calls, "reload NetworkManager.service") != 2 {
		t.Fatalf("onChange after the rotation: %q", calls)
	}
	if r := s.pass(s.web); r.Exit != 0 || readLog(t, s.log) != calls {
		t.Fatalf("third pass: %s\nsystemctl: %q", r, readLog(t, s.log))
	}
}

// agentAppliesRotation: `bootsync agent` writes the values rotated again
// and runs their onChange once; its metrics show a pass without error.
func (s *secretFleet) agentAppliesRotation(psk, tok string) {
	t := s.t
	t.Helper()
	before := strings.Count(readLog(t, s.log), "restart api.service")
	metrics := s.agentPass(s.web, s.webAddr, "bootsync_pass_duration_seconds_count 1")
	if strings.Contains(metrics, "bootsync_errors_total{") || !strings.Contains(metrics, "\nbootsync_drift_files 0\n") {
		t.Fatalf("web-01 agent metrics after the rotation:\n%s", metrics)
	}
	s.checkWebSecrets(psk, tok)
	calls := readLog(t, s.log)
	if strings.Count(calls, "restart api.service") != before+1 || strings.Count(calls, "reload NetworkManager.service") != 3 {
		t.Fatalf("onChange after the agent's rotation: %q", calls)
	}
}

// assertNoPlaintextAnywhere: no output, agent log or metrics text seen,
// no `status` (text and JSON) or `plan` output, and no file in either
// host's state directory holds a plaintext.
func (s *secretFleet) assertNoPlaintextAnywhere(plaintexts ...string) {
	t := s.t
	t.Helper()
	for _, args := range [][]string{{"status", "--config", s.web.Config}, {"status", "--config", s.web.Config, "--output", "json"}, {"plan", "--config", s.web.Config}} {
		r := s.web.Run(s.env, args...)
		s.outputs = append(s.outputs, r.Stdout, r.Stderr)
	}
	for i, out := range s.outputs {
		secrettest.AssertNoPlaintext(t, "output "+strconv.Itoa(i), out, plaintexts...)
	}
	for _, h := range []*fleettest.Host{s.web, s.db} {
		grepTree(t, h.StateDir, plaintexts)
	}
}

// TestSecretEditedByHandIsRefused: a SOPS file made by the real sops CLI,
// then edited by hand before it was committed (a value's ciphertext; that
// and the MAC; the MAC alone), makes the host refuse the whole pass with
// reason secret: nothing in /etc is written (not even motd), and no
// output, error or state file holds the plaintext. The same file
// untouched is then written, so only the edit was refused.
func TestSecretEditedByHandIsRefused(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	web, keys := secretHost(t, f, "web-01", v1, "")
	const psk = "edited-psk-6431"
	enc := secrettest.SOPSEncrypt(t, t.TempDir(), "wifi.yaml", "wifi:\n  psk: "+psk+"\n", keys.AgeRecipient)
	commit := func(msg string, wifi []byte) {
		f.Commit(msg, map[string]string{
			"fleet.yaml": f.FleetYAML(v1, ""),
			"hosts/web-01.yaml": hostYAML("web-01", `spec:
  etc:
    - {path: /etc/wifi.conf, sops: secrets/wifi.yaml, template: true, content: "psk={{ .Secrets.wifi.psk }}\n"}
`),
			"secrets/wifi.yaml": string(wifi),
		})
	}
	var outputs []string
	for _, c := range []struct {
		msg  string
		file []byte
	}{
		{"a value edited by hand", secrettest.TamperSOPS(t, enc, "psk")},
		{"a value and the MAC edited by hand", secrettest.TamperSOPS(t, secrettest.TamperSOPS(t, enc, "psk"), "mac")},
		{"the MAC edited by hand", secrettest.TamperSOPS(t, enc, "mac")},
	} {
		commit(c.msg, c.file)
		r := web.Pass()
		outputs = append(outputs, r.Stdout, r.Stderr)
		if r.Exit == 0 {
			t.Fatalf("%s: the pass succeeded: %s", c.msg, r)
		}
		st := web.Status()
		if st.LastError == nil || st.LastError.Reason != reconcile.ReasonSecret || !strings.Contains(st.LastError.Message, "secrets/wifi.yaml") ||
			!strings.Contains(st.LastError.Message, "changed without sops") {
			t.Fatalf("%s: status error: %+v", c.msg, st.LastError)
		}
		for _, p := range []string{"motd", "wifi.conf"} {
			if _, ok := web.Etc(p); ok {
				t.Errorf("%s: /etc/%s was written by a refused pass", c.msg, p)
			}
		}
	}
	commit("the file as sops wrote it", enc)
	if r := web.Pass(); r.Exit != 0 {
		t.Fatalf("the untouched file: %s", r)
	}
	checkSecretFile(t, web, "wifi.conf", "psk="+psk+"\n")
	for i, out := range outputs {
		secrettest.AssertNoPlaintext(t, "output "+strconv.Itoa(i), out, psk)
	}
	grepTree(t, web.StateDir, []string{psk})
}

func checkSecretFile(t *testing.T, h *fleettest.Host, rel, want string) {
	t.Helper()
	got, ok := h.Etc(rel)
	if !ok || got != want {
		t.Fatalf("/etc/%s = %q (exists %v), want %q", rel, got, ok, want)
	}
	st, err := os.Stat(filepath.Join(h.Sim.Root, "etc", rel))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("/etc/%s: mode %v, %v; want 0600", rel, st.Mode().Perm(), err)
	}
}

func readLog(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// grepTree fails on any file under dir (status.json, the journal, the /etc
// manifest, kept originals, caches, the Git mirror) that holds a plaintext.
func grepTree(t *testing.T, dir string, plaintexts []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		secrettest.AssertNoPlaintext(t, p, string(b), plaintexts...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
