package etcoverlay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bootsync/bootsync/hostspec"
)

// fixture is a host root, a state directory, a boot ID file and a recording
// systemctl executable.
type fixture struct {
	root, state string
	bootIDFile  string
	callLog     string // one line per systemctl invocation: its arguments
	failFlag    string // while this file exists, units named broken* fail
	w           *Writer
}

const fakeSystemctl = `#!/bin/sh
# Records its arguments, one invocation per line, like a journal of what
# bootsync asked systemd to do. Units named broken* fail while FAIL exists.
printf '%s\n' "$*" >> "LOG"
for a in "$@"; do
  case "$a" in
    broken*) if [ -e "FAIL" ]; then
      echo "Job for $a failed because the control process exited with error code." >&2
      echo "See \"systemctl status $a\" and \"journalctl -xeu $a\" for details." >&2
      exit 1
    fi ;;
  esac
done
exit 0
`

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir(), state: filepath.Join(t.TempDir(), "state")}
	aux := t.TempDir()
	f.bootIDFile = filepath.Join(aux, "boot_id")
	f.callLog = filepath.Join(aux, "systemctl.log")
	f.failFlag = filepath.Join(aux, "FAIL")
	writeHostFile(t, f.bootIDFile, "6b1e4a7e-0000-4000-8000-000000000001\n", 0o644)
	script := strings.NewReplacer("LOG", f.callLog, "FAIL", f.failFlag).Replace(fakeSystemctl)
	writeHostFile(t, filepath.Join(aux, "systemctl"), script, 0o755)

	// The root's own account databases: /etc for local and sysusers
	// accounts, /usr/lib for the image's (nss-altfiles), as on bootc hosts.
	f.put(t, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nchrony:x:994:992::/var/lib/chrony:/sbin/nologin\n", 0o644)
	f.put(t, "/etc/group", "root:x:0:\nchrony:x:992:\n", 0o644)
	f.put(t, "/usr/lib/passwd", "# image accounts\nsshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin\n", 0o644)
	f.put(t, "/usr/lib/group", "sshd:x:74:\nssh_keys:x:101:\n", 0o644)

	w, err := New(f.root, f.state, WithSystemctl(filepath.Join(aux, "systemctl")), WithBootIDFile(f.bootIDFile))
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	return f
}

// rebootHost changes the boot ID, as a reboot does.
func (f *fixture) rebootHost(t testing.TB, n string) {
	t.Helper()
	writeHostFile(t, f.bootIDFile, "6b1e4a7e-0000-4000-8000-00000000000"+n+"\n", 0o644)
}

// put creates a file under the root (host path), with parents.
func (f *fixture) put(t testing.TB, hp, content string, mode os.FileMode) {
	t.Helper()
	writeHostFile(t, f.abs(hp), content, mode)
}

func (f *fixture) abs(hp string) string { return filepath.Join(f.root, hp) }

func (f *fixture) read(t testing.TB, hp string) string {
	t.Helper()
	b, err := os.ReadFile(f.abs(hp))
	if err != nil {
		t.Fatalf("read %s: %v", hp, err)
	}
	return string(b)
}

func (f *fixture) exists(t testing.TB, hp string) bool {
	t.Helper()
	_, err := os.Lstat(f.abs(hp))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// stat returns mode bits (07777), uid and gid of a file under the root.
func (f *fixture) stat(t testing.TB, hp string) (mode uint32, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(f.abs(hp))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return uint32(st.Mode) & 0o7777, int(st.Uid), int(st.Gid)
}

// calls returns the systemctl invocations so far and forgets them.
func (f *fixture) calls(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(f.callLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.callLog); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// pass runs what the agent runs: Plan, Apply, RunOnChange, failing the test
// on any error.
func (f *fixture) pass(t testing.TB, files []hostspec.EtcFile) (*Plan, *Result) {
	t.Helper()
	ctx := context.Background()
	p, err := f.w.Plan(ctx, files)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("plan problems: %v", err)
	}
	res, err := f.w.Apply(ctx, p)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := f.w.RunOnChange(ctx, res); err != nil {
		t.Fatalf("run onChange: %v", err)
	}
	return p, res
}

func (f *fixture) plan(t testing.TB, files []hostspec.EtcFile) *Plan {
	t.Helper()
	p, err := f.w.Plan(context.Background(), files)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

// tempFilesUnder lists files with the writer's temporary prefix anywhere
// under dir.
func tempFilesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeHostFile(t testing.TB, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}

// etcFile is a spec entry as hostspec resolves it: mode 0644, root:root.
func etcFile(p, content string, opts ...func(*hostspec.EtcFile)) hostspec.EtcFile {
	f := hostspec.EtcFile{
		Path:    p,
		Mode:    0o644,
		Owner:   "root",
		Group:   "root",
		Content: []byte(content),
		SHA256:  shaOf(content),
		Source:  hostspec.Source{File: "fleet.yaml", Line: 7},
	}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func mode(m uint32) func(*hostspec.EtcFile) {
	return func(f *hostspec.EtcFile) { f.Mode = hostspec.FileMode(m) }
}

func owner(u, g string) func(*hostspec.EtcFile) {
	return func(f *hostspec.EtcFile) { f.Owner, f.Group = u, g }
}

func restart(units ...string) func(*hostspec.EtcFile) {
	return func(f *hostspec.EtcFile) {
		if f.OnChange == nil {
			f.OnChange = &hostspec.OnChange{}
		}
		f.OnChange.Restart = append(f.OnChange.Restart, units...)
	}
}

func reload(units ...string) func(*hostspec.EtcFile) {
	return func(f *hostspec.EtcFile) {
		if f.OnChange == nil {
			f.OnChange = &hostspec.OnChange{}
		}
		f.OnChange.Reload = append(f.OnChange.Reload, units...)
	}
}

func absent(p string) hostspec.EtcFile {
	return hostspec.EtcFile{Path: p, Absent: true, Source: hostspec.Source{File: "hosts/web-01.yaml", Line: 3}}
}

func shaOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// changeSummary renders changes as "kind path" for exact comparisons.
func changeSummary(p *Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, string(c.Kind)+" "+c.Path)
	}
	return out
}

func driftSummary(p *Plan) []string {
	var out []string
	for _, d := range p.Drift {
		s := string(d.Kind) + " " + d.Path
		if !d.Corrected {
			s += " (left alone)"
		}
		out = append(out, s)
	}
	return out
}

func problemPaths(p *Plan) []string {
	var out []string
	for _, pr := range p.Problems {
		out = append(out, pr.Path)
	}
	return out
}

func managedPaths(t testing.TB, w *Writer) []string {
	t.Helper()
	m, err := w.Managed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range m {
		out = append(out, f.Path)
	}
	return out
}

func equalStrings(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}
