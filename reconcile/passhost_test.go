package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/registrytest"
)

// passHost is one host for the pass tests: a real fleet repository (git,
// read through gitsource over file://), a real registry (in-process, on
// 127.0.0.1), the real /etc writer on a temporary root, and bootcStandIn
// in place of bootc, the one part that cannot run here.
type passHost struct {
	t        *testing.T
	reg      *registrytest.Registry
	repo     *gittest.Repo
	origin   string
	root     string
	state    string
	bootc    *bootcStandIn
	image    string            // repository of the images, host:port/os/base
	digest   map[string]string // tag → digest: v1, v2, v3
	bootID   int
	rebooted int // hard reboots started

	// cancel ends the running pass's context: the shutdown a reboot starts.
	cancel context.CancelFunc
	// failReboot makes the reboot command fail; etcApplyErr makes the
	// /etc writer's Apply fail.
	failReboot  error
	etcApplyErr error
	// realReboot keeps the agent's own reboot (Config.RebootCommand).
	realReboot bool
	// systemctl is what the /etc writer runs for onChange actions.
	systemctl []string
}

// etcWithFaults is the real /etc writer, but Apply fails when the test
// says so.
type etcWithFaults struct {
	EtcWriter
	h *passHost
}

func (w etcWithFaults) Apply(ctx context.Context, p *etcoverlay.Plan) (*etcoverlay.Result, error) {
	if w.h.etcApplyErr != nil {
		return nil, w.h.etcApplyErr
	}
	return w.EtcWriter.Apply(ctx, p)
}

func newPassHost(t *testing.T) *passHost {
	t.Helper()
	h := &passHost{t: t, reg: registrytest.New(t, false), root: t.TempDir(), state: t.TempDir(), digest: map[string]string{},
		systemctl: []string{"/bin/true"}}
	h.image = h.reg.Host + "/os/base"
	for _, tag := range []string{"v1", "v2", "v3"} {
		h.digest[tag], _ = h.reg.PushRandom("os/base", tag)
	}
	h.origin = filepath.Join(t.TempDir(), "fleet.git")
	gittest.Git(t, filepath.Dir(h.origin), nil, "init", "-q", "--bare", "-b", "main", h.origin)
	h.repo = gittest.NewRepo(t, h.origin)
	for _, dir := range []string{"etc", "proc/sys/kernel/random"} {
		if err := os.MkdirAll(filepath.Join(h.root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.newBoot()
	h.bootc = &bootcStandIn{host: h, booted: h.entry("v1"), version: bootc.Version{Major: 1, Minor: 12}}
	return h
}

// ref is the image of tag, pinned: what bootc is switched to.
func (h *passHost) ref(tag string) string { return h.image + "@" + h.digest[tag] }

func (h *passHost) entry(tag string) *bootc.BootEntry {
	return &bootc.BootEntry{Image: &bootc.ImageStatus{
		Image:       bootc.ImageReference{Image: h.ref(tag), Transport: bootc.TransportRegistry},
		ImageDigest: h.digest[tag], Architecture: "amd64",
	}}
}

// fleet commits and pushes a fleet repository whose hosts run image tag,
// with spec lines (YAML under spec:, indented two spaces) added.
func (h *passHost) fleet(tag string, spec ...string) string {
	h.t.Helper()
	fleet := "apiVersion: bootsync.dev/v1alpha1\nkind: Fleet\nspec:\n  image: " + h.image + ":" + tag + "\n"
	for _, line := range spec {
		fleet += "  " + line + "\n"
	}
	c := h.repo.Commit("fleet at "+tag, map[string]string{
		"fleet.yaml":        fleet,
		"hosts/web-01.yaml": "apiVersion: bootsync.dev/v1alpha1\nkind: Host\nmetadata: {name: web-01}\n",
	})
	h.repo.Push()
	return c
}

// newBoot gives the host a new boot ID, as every hard boot does.
func (h *passHost) newBoot() {
	h.bootID++
	h.write("proc/sys/kernel/random/boot_id", fmt.Sprintf("boot-%d\n", h.bootID))
}

func (h *passHost) write(rel, content string) {
	h.t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// boot completes the reboot the last pass started, as bootc would: into the
// queued rollback, else into the staged deployment unless it is
// download-only.
func (h *passHost) boot() {
	h.bootc.mu.Lock()
	defer h.bootc.mu.Unlock()
	b := h.bootc
	switch {
	case b.rollbackQueued:
		b.booted, b.rollback, b.rollbackQueued = b.rollback, b.booted, false
	case b.staged != nil && !b.staged.DownloadOnly:
		b.booted, b.rollback, b.staged = b.staged, b.booted, nil
	}
	h.newBoot()
}

// agent is a new agent process on the host (every boot starts one).
func (h *passHost) agent(edit ...func(*Config)) *Agent {
	h.t.Helper()
	src, err := gitsource.New("file://"+h.origin, gitsource.WithCacheDir(filepath.Join(h.state, "git")), gitsource.WithRef("main"))
	if err != nil {
		h.t.Fatal(err)
	}
	reg, err := registry.New(registry.WithAuthRoot(h.root))
	if err != nil {
		h.t.Fatal(err)
	}
	etcw, err := etcoverlay.New(h.root, filepath.Join(h.state, "etc"),
		etcoverlay.WithBootIDFile(filepath.Join(h.root, "proc/sys/kernel/random/boot_id")), etcoverlay.WithSystemctl(h.systemctl...))
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := Config{Host: "web-01", StateDir: h.state, Root: h.root, Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}
	for _, e := range edit {
		e(&cfg)
	}
	a, err := New(cfg, Deps{Source: src, Registry: reg, Bootc: h.bootc, Etc: etcWithFaults{etcw, h}, Metrics: NewMetrics()})
	if err != nil {
		h.t.Fatal(err)
	}
	if h.realReboot {
		return a
	}
	a.startReboot = func(context.Context) error {
		if h.failReboot != nil {
			return h.failReboot
		}
		h.rebooted++
		h.cancel() // the shutdown stops the agent
		return nil
	}
	return a
}

// pass runs one pass of a as the agent does; dry runs too.
func (h *passHost) pass(a *Agent, opts PassOptions) (*PassResult, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	h.cancel = cancel
	h.bootc.reset()
	return a.Pass(ctx, opts)
}

func (h *passHost) journal() *Journal {
	h.t.Helper()
	j, err := NewJournalStore(h.state).Load()
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *passHost) saveJournal(j *Journal) {
	h.t.Helper()
	if err := NewJournalStore(h.state).Save(j); err != nil {
		h.t.Fatal(err)
	}
}

func (h *passHost) status() *Status {
	h.t.Helper()
	st, err := NewStatusStore(h.state).Load()
	if err != nil || st == nil {
		h.t.Fatalf("status.json: %v, %v", st, err)
	}
	return st
}

// bootcStandIn keeps deployments the way bootc does and records the verbs
// the agent runs. fail makes a verb fail; before runs before a verb.
type bootcStandIn struct {
	host *passHost
	mu   sync.Mutex

	booted, staged, rollback *bootc.BootEntry
	rollbackQueued           bool
	version                  bootc.Version

	calls  []string
	fail   map[string]error
	before func(verb string)
}

func (b *bootcStandIn) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = nil
}

func (b *bootcStandIn) called() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.calls, ",")
}

func (b *bootcStandIn) verb(verb string) error {
	b.calls = append(b.calls, verb)
	if b.before != nil {
		b.before(verb)
	}
	return b.fail[verb]
}

func (b *bootcStandIn) Status(context.Context) (*bootc.Host, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fail["status"]; err != nil {
		return nil, err
	}
	return &bootc.Host{APIVersion: bootc.APIVersionV1, Kind: bootc.KindBootcHost, Status: bootc.HostStatus{
		Booted: b.booted, Staged: b.staged, Rollback: b.rollback, RollbackQueued: b.rollbackQueued}}, nil
}

func (b *bootcStandIn) Version(context.Context) (bootc.Version, error) { return b.version, nil }

func (b *bootcStandIn) Switch(_ context.Context, ref string, _ bootc.SwitchOptions) (*bootc.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.verb("switch"); err != nil {
		return nil, err
	}
	_, digest, _ := strings.Cut(ref, "@")
	b.staged = &bootc.BootEntry{Image: &bootc.ImageStatus{Image: bootc.ImageReference{Image: ref, Transport: bootc.TransportRegistry},
		ImageDigest: digest, Architecture: "amd64"}}
	return &bootc.Result{}, nil
}

// Rollback queues the rollback deployment, or cancels a queued rollback;
// either way a staged deployment is discarded.
func (b *bootcStandIn) Rollback(context.Context, bootc.RollbackOptions) (*bootc.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.verb("rollback"); err != nil {
		return nil, err
	}
	b.rollbackQueued, b.staged = !b.rollbackQueued, nil
	return &bootc.Result{}, nil
}

func (b *bootcStandIn) Upgrade(_ context.Context, opts bootc.UpgradeOptions) (*bootc.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	verb := "upgrade"
	switch {
	case opts.DownloadOnly:
		verb = "upgrade --download-only"
	case opts.FromDownloaded:
		verb = "upgrade --from-downloaded"
	case opts.Apply:
		verb = "upgrade --apply --soft-reboot"
	}
	if err := b.verb(verb); err != nil {
		return nil, err
	}
	switch {
	case b.staged == nil:
		return nil, errors.New("no staged deployment")
	case opts.DownloadOnly:
		b.staged.DownloadOnly = true
	case opts.FromDownloaded:
		b.staged.DownloadOnly = false
	case opts.Apply:
		b.host.cancel()
		return nil, bootc.ErrRebooting
	}
	return &bootc.Result{}, nil
}

// steps is the plan's actions, as TestDecide writes them.
func steps(p Plan) string { return actions(p) }

func digestsOf(q map[string]QuarantineEntry) []string {
	var out []string
	for d := range q {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}
