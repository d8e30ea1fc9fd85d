// Package e2e tests the real bootsync binary end to end: a fleet repository
// served over smart HTTP by git http-backend, images in the CNCF
// distribution registry (Debian's docker-registry) signed in cosign's
// format, and hosts simulated by the bootc simulator on PATH.
package e2e

import (
	"cmp"
	"context"
	"encoding/json"
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

var bootsyncBin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "bootsync-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bootsyncBin = filepath.Join(dir, "bootsync")
		build := exec.Command("go", "build", "-o", bootsyncBin, "github.com/bootsync/bootsync/cmd/bootsync")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build bootsync: %v\n%s", err, out)
			return 1
		}
		defer bootcsim.Cleanup()
		return m.Run()
	}()
	os.Exit(code)
}

// fleet is one fleet: its Git repository and server, its registry and the
// key that signs its images.
type fleet struct {
	t       *testing.T
	git     *gitserver.Server
	repo    *gittest.Repo
	url     string
	reg     *registryserver.Server
	signer  *signer.Signer
	keyFile string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	return newFleetOn(t, gitserver.New(t))
}

// newFleetOn serves the fleet repository from git.
func newFleetOn(t *testing.T, git *gitserver.Server) *fleet {
	t.Helper()
	f := &fleet{t: t, git: git, repo: gittest.NewRepo(t, git.InitBare("fleet.git")), url: git.URL("fleet.git"), reg: registryserver.New(t)}
	var err error
	if f.signer, err = signer.New(); err != nil {
		t.Fatal(err)
	}
	f.keyFile = filepath.Join(t.TempDir(), "fleet.pub")
	if err := f.signer.WritePublicKey(f.keyFile); err != nil {
		t.Fatal(err)
	}
	return f
}

// image pushes a small bootc-like image to os/base:tag and returns
// repo@digest. Signed unless unsigned is set.
func (f *fleet) image(tag string, opts bootcsim.ImageOptions, signed bool) string {
	f.t.Helper()
	if opts.Marker == "" {
		opts.Marker = tag
	}
	img := bootcsim.Image(f.t, opts)
	return f.push(tag, img, signed)
}

func (f *fleet) push(tag string, img v1.Image, signed bool) string {
	f.t.Helper()
	ref, err := name.NewTag(f.reg.Addr()+"/os/base:"+tag, name.StrictValidation)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(f.t.Context())); err != nil {
		f.t.Fatalf("push %s: %v", ref, err)
	}
	pinned := f.reg.Addr() + "/os/base@" + bootcsim.Digest(f.t, img)
	if signed {
		if err := f.signer.Sign(f.t.Context(), pinned); err != nil {
			f.t.Fatalf("sign %s: %v", pinned, err)
		}
	}
	return pinned
}

// tagRef is the tag reference of an image pushed by image().
func (f *fleet) tagRef(tag string) string { return f.reg.Addr() + "/os/base:" + tag }

// commit writes files into the fleet repository and pushes; it returns
// the commit id.
func (f *fleet) commit(msg string, files map[string]string) string {
	f.t.Helper()
	c := f.repo.Commit(msg, files)
	f.repo.Push()
	return c
}

// fleetYAML is a fleet.yaml for image with a few /etc files and a health
// check the simulator answers (bootc sim health fails on a bad image).
// update holds the update policy's lines (default "reboot: immediate").
func (f *fleet) fleetYAML(image string, update string) string {
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
    - {name: simulated-os, command: [` + bootcsim.Build(f.t) + `, sim, health], timeout: 5s, interval: 100ms, retries: 2}
  update:
    grace: 1s
` + upd.String() + `policy:
  requireSignatures: true
`
}

func hostYAML(name, spec string) string {
	return "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata:\n  name: " + name + "\n" + spec
}

// host is a simulated bootc host running the real bootsync binary.
type host struct {
	t        *testing.T
	name     string
	f        *fleet
	sim      *bootcsim.Host
	config   string
	stateDir string
}

type hostOptions struct {
	extraConfig string            // appended to the agent's config.yaml
	etc         map[string]string // initial /etc
	version     string            // simulated bootc version
	caFile      string            // repo.auth.caFile, relative to the host root
	metrics     string            // metrics.address (default: none)
	interval    string            // default 1s
}

// newHost boots a simulated host on image (repo@digest) with an agent
// configured for the fleet.
func (f *fleet) newHost(name, image string, o hostOptions) *host {
	f.t.Helper()
	repo, digest, _ := strings.Cut(image, "@")
	sim := bootcsim.NewHost(f.t, bootcsim.Options{Image: repo + "@" + digest, Digest: digest, KillParent: true,
		InsecureRegistries: []string{f.reg.Addr()}, Etc: o.etc, Version: o.version})
	h := &host{t: f.t, name: name, f: f, sim: sim, stateDir: filepath.Join(f.t.TempDir(), "state")}
	h.config = filepath.Join(f.t.TempDir(), "config.yaml")
	auth := ""
	if o.caFile != "" {
		auth = "\n  auth:\n    caFile: " + filepath.Join(sim.Root, o.caFile)
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
%s`, name, f.url, auth, f.keyFile, f.reg.Addr(), cmp.Or(o.interval, "1s"), h.stateDir, sim.Root, o.metrics, o.extraConfig)
	if err := os.WriteFile(h.config, []byte(cfg), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return h
}

// passResult is how one `bootsync reconcile` process ended.
type passResult struct {
	exit   int
	killed bool // killed by SIGKILL: the reboot it started, or a fault point
	stdout string
	stderr string
}

func (r passResult) String() string {
	return fmt.Sprintf("exit %d killed %v\nstdout:\n%s\nstderr:\n%s", r.exit, r.killed, r.stdout, r.stderr)
}

// run runs the bootsync binary as the host would (its bootc on PATH).
func (h *host) run(env []string, args ...string) passResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bootsyncBin, args...)
	cmd.Env = append(h.sim.Env(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := passResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.killed = true
		}
	default:
		h.t.Fatalf("run bootsync %v: %v", args, err)
	}
	return res
}

// pass runs one `bootsync reconcile` pass.
func (h *host) pass(env ...string) passResult {
	h.t.Helper()
	return h.run(env, "reconcile", "--config", h.config)
}

// mustPass runs a pass that must succeed without rebooting.
func (h *host) mustPass() passResult {
	h.t.Helper()
	r := h.pass()
	if r.exit != 0 || r.killed {
		h.t.Fatalf("pass on %s failed: %s", h.name, r)
	}
	return r
}

// converge runs passes until one ends without error or reboot, failing
// after max passes. It returns how many reboots happened on the way.
func (h *host) converge(max int) int {
	h.t.Helper()
	reboots := 0
	var last passResult
	for range max {
		last = h.pass()
		switch {
		case last.killed:
			reboots++
		case last.exit == 0:
			st := h.status()
			if st.LastPass != nil && (st.LastPass.State == reconcile.StateConverged) {
				return reboots
			}
		}
	}
	h.t.Fatalf("%s did not converge in %d passes; last: %s\nstatus: %+v", h.name, max, last, h.status().LastPass)
	return reboots
}

func (h *host) status() *reconcile.Status {
	h.t.Helper()
	st, err := reconcile.NewStatusStore(h.stateDir).Load()
	if err != nil || st == nil {
		h.t.Fatalf("status of %s: %v (nil: %v)", h.name, err, st == nil)
	}
	return st
}

func (h *host) journal() *reconcile.Journal {
	h.t.Helper()
	j, err := reconcile.NewJournalStore(h.stateDir).Load()
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *host) booted() string {
	h.t.Helper()
	return h.sim.Status(h.t).BootedDigest()
}

// boots counts the simulated host's reboots.
func (h *host) boots() int {
	h.t.Helper()
	return len(h.sim.State(h.t).Boots)
}

func (h *host) etc(rel string) (string, bool) {
	h.t.Helper()
	return h.sim.ReadEtc(h.t, rel)
}

// callsSince returns the bootc calls after the first n.
func (h *host) calls() []bootcsim.Call {
	h.t.Helper()
	return h.sim.Calls(h.t)
}

func digestOf(pinned string) string {
	_, d, _ := strings.Cut(pinned, "@")
	return d
}

func verbs(calls []bootcsim.Call) []string {
	var out []string
	for _, c := range calls {
		if len(c.Argv) > 0 && c.Argv[0] != "status" && c.Argv[0] != "--version" && c.Argv[0] != "sim" {
			out = append(out, strings.Join(c.Argv, " "))
		}
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
