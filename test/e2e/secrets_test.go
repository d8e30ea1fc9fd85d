package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/secrettest"
)

// secretHost is a simulated host whose keys live in its root: an age
// identity (named in its config) and an SSH host key at the standard path
// (the default secrets.sshHostKeys).
func secretHost(t *testing.T, f *fleettest.Fleet, name, image string) (*fleettest.Host, secrettest.Host) {
	t.Helper()
	keys := secrettest.NewHost(t, filepath.Join(t.TempDir(), name))
	h := f.NewHost(name, image, hostOptions{ExtraConfig: "secrets:\n  ageIdentityFiles: [" + keys.IdentityFile + "]\n"})
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
// host again. Another host, whose keys the files are not for, refuses the
// whole pass and writes nothing. No output, log, status, journal or state
// file holds a plaintext.
func TestSecretRotatedInGitReachesTheHost(t *testing.T) {
	f := newFleet(t)
	v1 := f.Image("v1", bootcsim.ImageOptions{Version: "1"}, true)
	web, webKeys := secretHost(t, f, "web-01", v1)
	db, _ := secretHost(t, f, "db-01", v1)
	encDir := t.TempDir()
	const psk1, psk2, tok1, tok2 = "first-psk-4471", "second-psk-9902", "first-token-1188", "second-token-6650"
	hostFile := hostYAML("web-01", `spec:
  secrets: {recipients: [`+webKeys.AgeRecipient+`, "`+webKeys.SSHPublic+`"]}
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
	// db-01 declares no recipient: validate only warns, and its agent
	// finds out that it cannot open the files.
	dbFile := hostYAML("db-01", `spec:
  etc:
    - {path: /etc/api/token, age: secrets/token.age}
`)
	commit := func(msg, psk, tok string) {
		f.Commit(msg, map[string]string{
			"fleet.yaml":        f.FleetYAML(v1, ""),
			"hosts/web-01.yaml": hostFile,
			"hosts/db-01.yaml":  dbFile,
			"secrets/wifi.yaml": string(secrettest.SOPSEncrypt(t, encDir, "wifi.yaml", "wifi:\n  psk: "+psk+"\n", webKeys.AgeRecipient)),
			"secrets/token.age": string(secrettest.AgeEncrypt(t, encDir, tok+"\n", webKeys.SSHPublic)),
		})
	}
	plaintexts := []string{psk1, psk2, tok1, tok2}
	var outputs []string
	env, log := fakeSystemctl(t, web)
	pass := func(h *fleettest.Host) fleettest.PassResult {
		r := h.Pass(env...)
		outputs = append(outputs, r.Stdout, r.Stderr)
		return r
	}

	commit("secrets v1", psk1, tok1)
	if r := pass(web); r.Exit != 0 {
		t.Fatalf("web-01: %s", r)
	}
	checkSecretFile(t, web, "NetworkManager/system-connections/home.nmconnection", "[wifi-security]\npsk="+psk1+"\n")
	checkSecretFile(t, web, "api/token", tok1+"\n")
	if calls := readLog(t, log); !strings.Contains(calls, "reload NetworkManager.service") || !strings.Contains(calls, "restart api.service") {
		t.Fatalf("onChange after the first write: %q", calls)
	}

	// Another host: refused as a whole, nothing written (not even motd).
	r := pass(db)
	if r.Exit == 0 {
		t.Fatalf("db-01 opened a secret that is not for it: %s", r)
	}
	st := db.Status()
	if st.LastError == nil || st.LastError.Reason != reconcile.ReasonSecret || !strings.Contains(st.LastError.Message, "secrets/token.age") ||
		!strings.Contains(st.LastError.Message, "not encrypted to any key of this host") {
		t.Fatalf("db-01 status error: %+v", st.LastError)
	}
	for _, p := range []string{"motd", "api/token"} {
		if _, ok := db.Etc(p); ok {
			t.Errorf("db-01: /etc/%s was written by a refused pass", p)
		}
	}

	// Rotation: both files re-encrypted with new values.
	commit("rotate secrets", psk2, tok2)
	before := strings.Count(readLog(t, log), "restart api.service")
	if r := pass(web); r.Exit != 0 {
		t.Fatalf("web-01 after the rotation: %s", r)
	}
	checkSecretFile(t, web, "NetworkManager/system-connections/home.nmconnection", "[wifi-security]\npsk="+psk2+"\n")
	checkSecretFile(t, web, "api/token", tok2+"\n")
	calls := readLog(t, log)
	if strings.Count(calls, "restart api.service") != before+1 || strings.Count(calls, "reload NetworkManager.service") != 2 {
		t.Fatalf("onChange after the rotation: %q", calls)
	}
	// Unchanged: a further pass changes nothing and runs nothing.
	if r := pass(web); r.Exit != 0 || readLog(t, log) != calls {
		t.Fatalf("third pass: %s\nsystemctl: %q", r, readLog(t, log))
	}

	for _, args := range [][]string{{"status", "--config", web.Config}, {"status", "--config", web.Config, "--output", "json"}, {"plan", "--config", web.Config}} {
		r := web.Run(env, args...)
		outputs = append(outputs, r.Stdout, r.Stderr)
	}
	for i, out := range outputs {
		secrettest.AssertNoPlaintext(t, "output "+string(rune('0'+i%10)), out, plaintexts...)
	}
	for _, h := range []*fleettest.Host{web, db} {
		grepTree(t, h.StateDir, plaintexts)
	}
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
