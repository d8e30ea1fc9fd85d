// Package fleettest sets up a fleet for end-to-end tests and benchmarks of
// the real bootsync binary: a fleet repository served over smart HTTP by git
// http-backend, images in the CNCF distribution registry (Debian's
// docker-registry) signed in cosign's format, and hosts simulated by the bootc
// simulator on PATH.
package fleettest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/registryserver"
	"github.com/bootsync/bootsync/test/signer"
)

// BuildTags are the build tags bootsync needs: containers/image without
// C libraries (see the Makefile).
const BuildTags = "containers_image_openpgp"

// BuildBootsync builds cmd/bootsync into dir and returns the binary's path.
func BuildBootsync(dir string) (string, error) {
	bin := filepath.Join(dir, "bootsync")
	out, err := exec.Command("go", "build", "-tags", BuildTags, "-o", bin, "github.com/bootsync/bootsync/cmd/bootsync").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build bootsync: %w\n%s", err, out)
	}
	return bin, nil
}

// Fleet is one fleet: its Git repository and server, its registry and the
// key that signs its images.
type Fleet struct {
	T        testing.TB
	Git      *gitserver.Server
	Repo     *gittest.Repo
	URL      string
	Registry *registryserver.Server
	Signer   *signer.Signer
	KeyFile  string
	// Bootsync is the bootsync binary the hosts run.
	Bootsync string
}

// New makes a fleet whose hosts run the bootsync binary at bootsync.
func New(t testing.TB, bootsync string) *Fleet {
	t.Helper()
	return NewOn(t, gitserver.New(t), bootsync)
}

// NewOn serves the fleet repository from git.
func NewOn(t testing.TB, git *gitserver.Server, bootsync string) *Fleet {
	t.Helper()
	f := &Fleet{T: t, Git: git, Repo: gittest.NewRepo(t, git.InitBare("fleet.git")), URL: git.URL("fleet.git"), Registry: registryserver.New(t), Bootsync: bootsync}
	var err error
	if f.Signer, err = signer.New(); err != nil {
		t.Fatal(err)
	}
	f.KeyFile = filepath.Join(t.TempDir(), "fleet.pub")
	if err := f.Signer.WritePublicKey(f.KeyFile); err != nil {
		t.Fatal(err)
	}
	return f
}

// Image pushes a small bootc-like image to os/base:tag and returns
// repo@digest. Signed unless unsigned is set.
func (f *Fleet) Image(tag string, opts bootcsim.ImageOptions, signed bool) string {
	f.T.Helper()
	if opts.Marker == "" {
		opts.Marker = tag
	}
	img := bootcsim.Image(f.T, opts)
	return f.Push(tag, img, signed)
}

// Push pushes img to os/base:tag (signed if asked) and returns repo@digest.
func (f *Fleet) Push(tag string, img v1.Image, signed bool) string {
	f.T.Helper()
	ref, err := name.NewTag(f.Registry.Addr()+"/os/base:"+tag, name.StrictValidation)
	if err != nil {
		f.T.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(f.T.Context())); err != nil {
		f.T.Fatalf("push %s: %v", ref, err)
	}
	pinned := f.Registry.Addr() + "/os/base@" + bootcsim.Digest(f.T, img)
	if signed {
		if err := f.Signer.Sign(f.T.Context(), pinned); err != nil {
			f.T.Fatalf("sign %s: %v", pinned, err)
		}
	}
	return pinned
}

// TagRef is the tag reference of an image pushed by Image.
func (f *Fleet) TagRef(tag string) string { return f.Registry.Addr() + "/os/base:" + tag }

// Commit writes files into the fleet repository and pushes; it returns
// the commit id.
func (f *Fleet) Commit(msg string, files map[string]string) string {
	f.T.Helper()
	c := f.Repo.Commit(msg, files)
	f.Repo.Push()
	return c
}

// FleetYAML is a fleet.yaml for image with a few /etc files and a health
// check the simulator answers (bootc sim health fails on a bad image).
// update holds the update policy's lines (default "reboot: immediate").
func (f *Fleet) FleetYAML(image string, update string) string {
	if update == "" {
		update = "reboot: immediate"
	}
	var upd strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(update), "\n") {
		upd.WriteString("    " + line + "\n")
	}
	return `apiVersion: bootsync.dev/v1alpha1
kind: Fleet
spec:
  image: ` + image + `
  etc:
    - path: /etc/motd
      content: "{{ .Host.Name }} is managed by bootsync\n"
      template: true
    - path: /etc/chrony.conf
      content: "pool pool.ntp.org iburst\n"
  health:
    - {name: simulated-os, command: [` + bootcsim.Build(f.T) + `, sim, health], timeout: 5s, interval: 100ms, retries: 2}
  update:
    grace: 1s
` + upd.String() + `policy:
  requireSignatures: true
`
}

// HostYAML is a hosts/<name>.yaml with spec appended.
func HostYAML(name, spec string) string {
	return "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata:\n  name: " + name + "\n" + spec
}

// Host is a simulated bootc host running the real bootsync binary.
type Host struct {
	T        testing.TB
	Name     string
	Fleet    *Fleet
	Sim      *bootcsim.Host
	Config   string
	StateDir string
}

// HostOptions change a simulated host and its agent configuration.
type HostOptions struct {
	ExtraConfig string            // appended to the agent's config.yaml
	Etc         map[string]string // initial /etc
	Version     string            // simulated bootc version
	CAFile      string            // repo.auth.caFile, relative to the host root
	Metrics     string            // metrics.address (default: none)
	Interval    string            // default 1s
}

// NewHost boots a simulated host on image (repo@digest) with an agent
// configured for the fleet.
func (f *Fleet) NewHost(name, image string, o HostOptions) *Host {
	f.T.Helper()
	repo, digest, _ := strings.Cut(image, "@")
	sim := bootcsim.NewHost(f.T, bootcsim.Options{Image: repo + "@" + digest, Digest: digest, KillParent: true,
		InsecureRegistries: []string{f.Registry.Addr()}, Etc: o.Etc, Version: o.Version})
	h := &Host{T: f.T, Name: name, Fleet: f, Sim: sim, StateDir: filepath.Join(f.T.TempDir(), "state")}
	h.Config = filepath.Join(f.T.TempDir(), "config.yaml")
	auth := ""
	if o.CAFile != "" {
		auth = "\n  auth:\n    caFile: " + filepath.Join(sim.Root, o.CAFile)
	}
	cfg := fmt.Sprintf(`host:
  name: %s
repo:
  url: %s
  ref: main
  allowHTTP: true%s
trust:
  signingKeys: [%s]
  requireSignatures: true
registry:
  insecure: [%s]
interval: %s
jitter: 0s
stateDir: %s
root: %s
reboot:
  command: [bootc, sim, reboot, --shutdown]
metrics:
  address: %q
%s`, name, f.URL, auth, f.KeyFile, f.Registry.Addr(), cmp.Or(o.Interval, "1s"), h.StateDir, sim.Root, o.Metrics, o.ExtraConfig)
	if err := os.WriteFile(h.Config, []byte(cfg), 0o644); err != nil {
		f.T.Fatal(err)
	}
	return h
}

// PassResult is how one `bootsync reconcile` process ended.
type PassResult struct {
	Exit   int
	Killed bool // killed by SIGKILL: the reboot it started, or a fault point
	Stdout string
	Stderr string
}

// String shows how the pass ended and what it printed.
func (r PassResult) String() string {
	return fmt.Sprintf("exit %d killed %v\nstdout:\n%s\nstderr:\n%s", r.Exit, r.Killed, r.Stdout, r.Stderr)
}

// Run runs the bootsync binary as the host would (its bootc on PATH).
func (h *Host) Run(env []string, args ...string) PassResult {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(h.T.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Fleet.Bootsync, args...)
	cmd.Env = append(h.Sim.Env(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := PassResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.Killed = true
		}
	default:
		h.T.Fatalf("run bootsync %v: %v", args, err)
	}
	return res
}

// Pass runs one `bootsync reconcile` pass.
func (h *Host) Pass(env ...string) PassResult {
	h.T.Helper()
	return h.Run(env, "reconcile", "--config", h.Config)
}

// MustPass runs a pass that must succeed without rebooting.
func (h *Host) MustPass() PassResult {
	h.T.Helper()
	r := h.Pass()
	if r.Exit != 0 || r.Killed {
		h.T.Fatalf("pass on %s failed: %s", h.Name, r)
	}
	return r
}

// Converge runs passes until one ends without error or reboot, failing
// after max passes. It returns how many reboots happened on the way.
func (h *Host) Converge(max int) int {
	h.T.Helper()
	reboots := 0
	var last PassResult
	for range max {
		last = h.Pass()
		switch {
		case last.Killed:
			reboots++
		case last.Exit == 0:
			st := h.Status()
			if st.LastPass != nil && (st.LastPass.State == reconcile.StateConverged) {
				return reboots
			}
		}
	}
	h.T.Fatalf("%s did not converge in %d passes; last: %s\nstatus: %+v", h.Name, max, last, h.Status().LastPass)
	return reboots
}

// Status is the agent's last status.json.
func (h *Host) Status() *reconcile.Status {
	h.T.Helper()
	st, err := reconcile.NewStatusStore(h.StateDir).Load()
	if err != nil || st == nil {
		h.T.Fatalf("status of %s: %v (nil: %v)", h.Name, err, st == nil)
	}
	return st
}

// Journal is the agent's journal.
func (h *Host) Journal() *reconcile.Journal {
	h.T.Helper()
	j, err := reconcile.NewJournalStore(h.StateDir).Load()
	if err != nil {
		h.T.Fatal(err)
	}
	return j
}

// Booted is the digest bootc boots.
func (h *Host) Booted() string {
	h.T.Helper()
	return h.Sim.Status(h.T).BootedDigest()
}

// Boots counts the simulated host's reboots.
func (h *Host) Boots() int {
	h.T.Helper()
	return len(h.Sim.State(h.T).Boots)
}

// Etc reads a file of the host's live /etc.
func (h *Host) Etc(rel string) (string, bool) {
	h.T.Helper()
	return h.Sim.ReadEtc(h.T, rel)
}

// Calls returns every bootc call the host received.
func (h *Host) Calls() []bootcsim.Call {
	h.T.Helper()
	return h.Sim.Calls(h.T)
}

// DigestOf is the digest of a repo@digest reference.
func DigestOf(pinned string) string {
	_, d, _ := strings.Cut(pinned, "@")
	return d
}

// Verbs are the bootc calls that change something, as command lines.
func Verbs(calls []bootcsim.Call) []string {
	var out []string
	for _, c := range calls {
		if len(c.Argv) > 0 && c.Argv[0] != "status" && c.Argv[0] != "--version" && c.Argv[0] != "sim" {
			out = append(out, strings.Join(c.Argv, " "))
		}
	}
	return out
}
