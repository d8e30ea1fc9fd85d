package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/registryserver"
	"github.com/bootsync/bootsync/test/signer"
)

// envBootsync names a prebuilt bootsync binary (agent.sh builds one);
// without it the benchmark builds cmd/bootsync once per test binary.
const envBootsync = "BOOTSYNC_BENCH_BIN"

var bootsyncBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// bootsyncBinary returns the bootsync executable the host runs.
func bootsyncBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv(envBootsync); bin != "" {
		return bin
	}
	bootsyncBuild.once.Do(func() {
		bootsyncBuild.dir, bootsyncBuild.err = os.MkdirTemp("", "bootsync-bench-agent-")
		if bootsyncBuild.err != nil {
			return
		}
		bootsyncBuild.bin = filepath.Join(bootsyncBuild.dir, "bootsync")
		out, err := exec.Command("go", "build", "-o", bootsyncBuild.bin, "github.com/bootsync/bootsync/cmd/bootsync").CombinedOutput()
		if err != nil {
			bootsyncBuild.err = fmt.Errorf("go build cmd/bootsync: %w\n%s", err, out)
		}
	})
	if bootsyncBuild.err != nil {
		tb.Fatal(bootsyncBuild.err)
	}
	return bootsyncBuild.bin
}

// fleet is a fleet repository served by git http-backend, its registry
// (Debian's docker-registry) and the key that signs its images. The few
// lines taken from test/e2e's harness are copied, not shared: that
// harness lives in _test files of another package.
type fleet struct {
	tb      testing.TB
	git     *gitserver.Server
	repo    *gittest.Repo
	url     string
	reg     *registryserver.Server
	signer  *signer.Signer
	keyFile string
}

func newFleet(tb testing.TB) *fleet {
	tb.Helper()
	git := gitserver.New(tb)
	f := &fleet{tb: tb, git: git, repo: gittest.NewRepo(tb, git.InitBare("fleet.git")), url: git.URL("fleet.git"), reg: registryserver.New(tb)}
	var err error
	if f.signer, err = signer.New(); err != nil {
		tb.Fatal(err)
	}
	f.keyFile = filepath.Join(tb.TempDir(), "fleet.pub")
	if err := f.signer.WritePublicKey(f.keyFile); err != nil {
		tb.Fatal(err)
	}
	return f
}

// image pushes a small bootc-like image to os/base:tag, signs it and
// returns repo@digest.
func (f *fleet) image(tag string) string {
	f.tb.Helper()
	img := bootcsim.Image(f.tb, bootcsim.ImageOptions{Marker: tag})
	ref, err := name.NewTag(f.reg.Addr()+"/os/base:"+tag, name.StrictValidation)
	if err != nil {
		f.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		f.tb.Fatalf("push %s: %v", ref, err)
	}
	pinned := f.reg.Addr() + "/os/base@" + bootcsim.Digest(f.tb, img)
	if err := f.signer.Sign(ctx, pinned); err != nil {
		f.tb.Fatalf("sign %s: %v", pinned, err)
	}
	return pinned
}

func (f *fleet) tagRef(tag string) string { return f.reg.Addr() + "/os/base:" + tag }

// commit writes files into the fleet repository and pushes them.
func (f *fleet) commit(msg string, files map[string]string) string {
	f.tb.Helper()
	c := f.repo.Commit(msg, files)
	f.repo.Push()
	return c
}

// fleetYAML is the end-to-end tests' fleet: two /etc files (one
// templated), a health check, immediate reboots and required signatures.
func (f *fleet) fleetYAML(image string) string {
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
    - {name: simulated-os, command: [` + bootcsim.Build(f.tb) + `, sim, health], timeout: 5s, interval: 100ms, retries: 2}
  update:
    grace: 1s
    reboot: immediate
policy:
  requireSignatures: true
`
}

// pinning is how the fleet names its image.
type pinning struct {
	name  string
	files func(f *fleet, tag, pinned string) map[string]string
}

// pinnings are the two ways a no-op pass needs no registry request.
var pinnings = []pinning{
	{"pinned", func(f *fleet, _, pinned string) map[string]string {
		return map[string]string{"fleet.yaml": f.fleetYAML(pinned)}
	}},
	{"locked", func(f *fleet, tag, pinned string) map[string]string {
		_, digest, _ := strings.Cut(pinned, "@")
		return map[string]string{
			"fleet.yaml":    f.fleetYAML(f.tagRef(tag)),
			"bootsync.lock": "apiVersion: bootsync.dev/v1alpha1\nkind: Lock\nimages:\n  " + f.tagRef(tag) + ": " + digest + "\n",
		}
	}},
}

// host is a simulated bootc host with the agent's configuration.
type host struct {
	tb       testing.TB
	name     string
	sim      *bootcsim.Host
	config   string
	stateDir string
}

// newHost boots a simulated host on image (repo@digest) and writes an
// agent configuration for the fleet with the given pass interval.
func (f *fleet) newHost(hostName, image string, interval time.Duration) *host {
	f.tb.Helper()
	_, digest, _ := strings.Cut(image, "@")
	sim := bootcsim.NewHost(f.tb, bootcsim.Options{Image: image, Digest: digest, KillParent: true,
		InsecureRegistries: []string{f.reg.Addr()}})
	h := &host{tb: f.tb, name: hostName, sim: sim, stateDir: filepath.Join(f.tb.TempDir(), "state")}
	h.config = filepath.Join(f.tb.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`host:
  name: %s
repo:
  url: %s
  ref: main
  allowHTTP: true
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
`, hostName, f.url, f.keyFile, f.reg.Addr(), interval, h.stateDir, sim.Root)
	if err := os.WriteFile(h.config, []byte(cfg), 0o644); err != nil {
		f.tb.Fatal(err)
	}
	return h
}

// converge runs `bootsync reconcile` until a pass ends converged with
// nothing to do, so that the agent measured afterwards only has no-op
// passes to run.
func (h *host) converge(max int) {
	h.tb.Helper()
	var last string
	for range max {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bootsyncBinary(h.tb), "reconcile", "--config", h.config)
		cmd.Env = h.sim.Env()
		out, err := cmd.CombinedOutput()
		cancel()
		last = fmt.Sprintf("%v\n%s", err, out)
		if err != nil {
			continue
		}
		st := h.status()
		if st.LastPass != nil && st.LastPass.State == reconcile.StateConverged && len(st.LastPass.Steps) == 0 {
			return
		}
	}
	h.tb.Fatalf("%s did not converge in %d passes; last: %s", h.name, max, last)
}

func (h *host) status() *reconcile.Status {
	h.tb.Helper()
	st, err := reconcile.NewStatusStore(h.stateDir).Load()
	if err != nil || st == nil {
		h.tb.Fatalf("status of %s: %v (nil: %v)", h.name, err, st == nil)
	}
	return st
}

// setup makes a fleet with one signed image named as p says and a host
// that already runs it, converged by one real pass (which wrote /etc and
// cached the signature verdict).
func setup(tb testing.TB, p pinning, interval time.Duration) (*fleet, *host) {
	tb.Helper()
	f := newFleet(tb)
	pinned := f.image("v1")
	f.commit("v1 "+p.name, p.files(f, "v1", pinned))
	h := f.newHost("web-01", pinned, interval)
	h.converge(3)
	if got := h.status().Desired; got == nil || got.Target != pinned {
		tb.Fatalf("after converging, desired = %+v, want target %s", got, pinned)
	}
	return f, h
}
