// Command demo runs bootsync's story on an embedded default: the example
// fleet (examples/fleet) served by a real Git server (git http-backend over
// smart HTTP) and images in a real OCI registry (go-containerregistry's), on
// 127.0.0.1 only, with three bootc hosts played by the bootc simulator. A pull
// request bumps the image (CI's diff first), the hosts converge; a git revert
// rolls them back with `bootc rollback`; an unsigned image is refused.
//
//	make demo    (or: go run ./examples/demo)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/signer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
	fmt.Printf("\nDone in %s.\n", time.Since(start).Round(100*time.Millisecond))
}

// The demo's clock for the edge hosts' maintenance window (Mon-Fri 01:00
// Asia/Seoul, see examples/fleet/groups/edge.yaml).
const (
	windowClosed = "2026-11-28T12:00:00+09:00" // a Saturday noon in Seoul
	windowOpen   = "2026-11-30T01:30:00+09:00" // Monday 01:30 in Seoul
)

type demo struct {
	work     string
	bin      string // bootsync, bootc (the simulator) and a stand-in systemctl
	fleet    string // the operator's clone of the fleet repository
	gitURL   string
	registry string // host:port
	keyFile  string
	signer   *signer.Signer
	hosts    []*simHost
}

type simHost struct {
	name, root, state, config string
}

func run(ctx context.Context) error {
	src, err := sourceRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bootsync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	d := &demo{work: work, bin: filepath.Join(work, "bin"), fleet: filepath.Join(work, "fleet")}

	say("Building bootsync and the bootc simulator")
	for target, pkg := range map[string]string{"bootsync": "./cmd/bootsync", "bootc": "./test/bootcsim/cmd/bootc"} {
		if err := runIn(ctx, src, nil, "go", "build", "-tags", "containers_image_openpgp", "-o", filepath.Join(d.bin, target), pkg); err != nil {
			return err
		}
	}
	// Health checks and onChange restarts call systemctl; the simulated
	// hosts have no systemd, so every unit is "active".
	if err := os.WriteFile(filepath.Join(d.bin, "systemctl"), []byte("#!/bin/sh\necho active\n"), 0o755); err != nil {
		return err
	}

	say("Starting an OCI registry and a Git server (git http-backend) on 127.0.0.1")
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	d.registry = strings.TrimPrefix(reg.URL, "http://")
	gitRoot := filepath.Join(work, "git")
	if err := runIn(ctx, work, gitEnv(), "git", "init", "-q", "--bare", "-b", "main", filepath.Join(gitRoot, "fleet.git")); err != nil {
		return err
	}
	gitSrv := httptest.NewServer(gitserver.Handler(gitRoot))
	defer gitSrv.Close()
	d.gitURL = gitSrv.URL + "/fleet.git"
	fmt.Printf("    registry %s, fleet repository %s\n", d.registry, d.gitURL)

	say("Pushing OS images; the fleet's key signs them (cosign's format)")
	if d.signer, err = signer.New(); err != nil {
		return err
	}
	d.keyFile = filepath.Join(work, "fleet.pub")
	if err := d.signer.WritePublicKey(d.keyFile); err != nil {
		return err
	}
	v1, err := d.push(ctx, "2026.11", true, "stable", "next")
	if err != nil {
		return err
	}
	v2, err := d.push(ctx, "2026.12", true, "2026.12")
	if err != nil {
		return err
	}
	if _, err := d.push(ctx, "2026.12.1", false, "2026.12.1"); err != nil {
		return err
	}

	say("The fleet repository: examples/fleet, with its images moved to this registry")
	if err := d.initFleet(ctx, src); err != nil {
		return err
	}
	for _, name := range []string{"kvm-01", "edge-01", "edge-02"} {
		h, err := d.newHost(ctx, name, v1)
		if err != nil {
			return err
		}
		d.hosts = append(d.hosts, h)
	}
	fmt.Println("    three simulated bootc hosts boot", short(v1), "(2026.11): kvm-01, edge-01 (canary ring), edge-02")

	say("First pass on every host: the image is already right; /etc is written")
	for _, h := range d.hosts {
		if _, err := d.pass(ctx, h, windowClosed); err != nil {
			return err
		}
	}
	motd, _ := os.ReadFile(filepath.Join(d.hosts[0].root, "etc/motd"))
	first, _, _ := strings.Cut(string(motd), "\n")
	fmt.Printf("    kvm-01:/etc/motd: %s\n", first)

	say("A pull request moves the fleet to 2026.12. CI runs `bootsync diff` on it:")
	if err := d.edit("fleet.yaml", "os/base:stable", "os/base:2026.12"); err != nil {
		return err
	}
	if err := d.show(ctx, "diff", "--repo", d.fleet, "--base", "main"); err != nil {
		return err
	}
	fmt.Println("    (edge-01 is in the canary ring on :next, so it does not change.)")

	say("Merged. The agents converge: stage, reboot, health checks, commit")
	if err := d.commitPush(ctx, "Move the fleet to 2026.12"); err != nil {
		return err
	}
	kvm, edge2 := d.hosts[0], d.hosts[2]
	if err := d.converge(ctx, kvm, windowClosed); err != nil {
		return err
	}
	fmt.Println("    edge-02 reboots only in its window (Mon-Fri 01:00 Seoul); it is Saturday noon there:")
	if _, err := d.pass(ctx, edge2, windowClosed); err != nil {
		return err
	}
	fmt.Println("    ...Monday 01:30 in Seoul:")
	if err := d.converge(ctx, edge2, windowOpen); err != nil {
		return err
	}
	d.booted("after the merge", v2)

	say("The release is bad after all: `git revert` on the fleet repository")
	if err := runIn(ctx, d.fleet, gitEnv(), "git", "revert", "--no-edit", "HEAD"); err != nil {
		return err
	}
	if err := runIn(ctx, d.fleet, gitEnv(), "git", "push", "-q", "origin", "HEAD:main"); err != nil {
		return err
	}
	for _, h := range []*simHost{kvm, edge2} {
		before, err := callCount(h)
		if err != nil {
			return err
		}
		if err := d.converge(ctx, h, windowOpen); err != nil {
			return err
		}
		if err := d.showCalls(h, before); err != nil {
			return err
		}
	}
	d.booted("after the revert", v1)

	say("Someone points the fleet at an image nobody signed")
	if err := d.edit("fleet.yaml", "os/base:stable", "os/base:2026.12.1"); err != nil {
		return err
	}
	if err := d.commitPush(ctx, "Try 2026.12.1"); err != nil {
		return err
	}
	out, err := d.pass(ctx, kvm, windowClosed)
	if err == nil {
		return errors.New("the unsigned image was accepted")
	}
	fmt.Printf("    kvm-01 refuses it and changes nothing: %s\n", lastError(out))
	if err := d.show(ctx, "status", "--config", kvm.config); err != nil {
		return err
	}
	return nil
}

// push writes a small bootc-like image under each tag and signs it (or not).
func (d *demo) push(ctx context.Context, version string, signed bool, tags ...string) (string, error) {
	img, err := bootcsim.BuildImage(bootcsim.ImageOptions{Version: version, Marker: version})
	if err != nil {
		return "", err
	}
	var pinned string
	for _, tag := range tags {
		ref, err := name.NewTag(d.registry+"/os/base:"+tag, name.StrictValidation)
		if err != nil {
			return "", err
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
		dg, err := img.Digest()
		if err != nil {
			return "", err
		}
		pinned = d.registry + "/os/base@" + dg.String()
	}
	if signed {
		if err := d.signer.Sign(ctx, pinned); err != nil {
			return "", fmt.Errorf("sign %s: %w", pinned, err)
		}
	}
	state := "signed"
	if !signed {
		state = "unsigned"
	}
	fmt.Printf("    os/base %-9s %s  (%s; tags %s)\n", version, short(pinned), state, strings.Join(tags, ", "))
	return pinned, nil
}

// initFleet clones the empty repository, copies examples/fleet into it
// with its image references moved to the demo registry, and pushes.
func (d *demo) initFleet(ctx context.Context, src string) error {
	if err := runIn(ctx, d.work, gitEnv(), "git", "clone", "-q", d.gitURL, d.fleet); err != nil {
		return err
	}
	err := filepath.WalkDir(filepath.Join(src, "examples", "fleet"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(src, "examples", "fleet"), p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = []byte(strings.ReplaceAll(string(b), "registry.example.com/os", d.registry+"/os"))
		target := filepath.Join(d.fleet, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		return err
	}
	return d.commitPush(ctx, "Initial fleet")
}

func (d *demo) newHost(ctx context.Context, name, image string) (*simHost, error) {
	dir := filepath.Join(d.work, "hosts", name)
	h := &simHost{name: name, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "bootc.json"), config: filepath.Join(dir, "config.yaml")}
	repo, digest, _ := strings.Cut(image, "@")
	if err := runIn(ctx, dir, h.env(d), filepath.Join(d.bin, "bootc"), "sim", "init", "--image", repo+"@"+digest, "--digest", digest, "--image-version", "2026.11"); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`host: {name: %s}
repo: {url: %q, ref: main, allowHTTP: true}
trust: {signingKeys: [%q], requireSignatures: true}
registry: {insecure: [%q]}
stateDir: %q
root: %q
reboot: {command: [bootc, sim, reboot, --shutdown]}
metrics: {address: ""}
`, name, d.gitURL, d.keyFile, d.registry, filepath.Join(dir, "state"), h.root)
	return h, os.WriteFile(h.config, []byte(cfg), 0o644)
}

// env is the environment of a simulated host: the simulator on PATH.
func (h *simHost) env(d *demo) []string {
	return append(os.Environ(),
		"PATH="+d.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BOOTCSIM_STATE="+h.state, "BOOTCSIM_ROOT="+h.root, "BOOTCSIM_LOG="+h.state+".log",
		"BOOTCSIM_INSECURE_REGISTRIES="+d.registry, "BOOTCSIM_KILL_PARENT=1")
}

// pass runs one `bootsync reconcile` on h and prints what it decided. A
// pass that ends in a reboot is killed by it, as on a real host.
func (d *demo) pass(ctx context.Context, h *simHost, now string) (string, error) {
	out, _, err := d.passRebooted(ctx, h, now)
	return out, err
}

func (d *demo) passRebooted(ctx context.Context, h *simHost, now string) (string, bool, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "bootsync"), "reconcile", "--config", h.config)
	cmd.Env = append(h.env(d), "BOOTSYNC_TEST_NOW="+now)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Printf("    %-8s rebooting...\n", h.name)
			return stdout.String(), true, nil
		}
	}
	st, _ := reconcile.NewStatusStore(filepath.Join(filepath.Dir(h.config), "state")).Load()
	if st != nil && st.LastPass != nil {
		fmt.Printf("    %-8s %s: %s\n", h.name, st.LastPass.State, st.LastPass.Reason)
	}
	if err != nil {
		return stderr.String(), false, fmt.Errorf("%s: %w", h.name, err)
	}
	return stdout.String(), false, nil
}

// converge runs passes until h is converged (at most a few).
func (d *demo) converge(ctx context.Context, h *simHost, now string) error {
	for range 6 {
		_, rebooted, err := d.passRebooted(ctx, h, now)
		if err != nil {
			return err
		}
		if rebooted {
			continue // status.json is from before the reboot
		}
		st, _ := reconcile.NewStatusStore(filepath.Join(filepath.Dir(h.config), "state")).Load()
		if st != nil && st.LastPass != nil && st.LastPass.State == reconcile.StateConverged {
			return nil
		}
	}
	return fmt.Errorf("%s did not converge", h.name)
}

func (d *demo) booted(when, want string) {
	fmt.Printf("    booted %s:", when)
	for _, h := range d.hosts {
		st, _ := reconcile.NewStatusStore(filepath.Join(filepath.Dir(h.config), "state")).Load()
		got := "?"
		if st != nil && st.Booted != nil {
			got = short(st.Booted.Digest)
		}
		fmt.Printf("  %s %s", h.name, got)
	}
	fmt.Printf("  (target %s)\n", short(want))
}

func callCount(h *simHost) (int, error) {
	calls, err := readCalls(h)
	return len(calls), err
}

func readCalls(h *simHost) ([]bootcsim.Call, error) {
	b, err := os.ReadFile(h.state + ".log")
	if err != nil {
		return nil, err
	}
	var calls []bootcsim.Call
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var c bootcsim.Call
		if err := jsonUnmarshal([]byte(line), &c); err != nil {
			return nil, err
		}
		calls = append(calls, c)
	}
	return calls, nil
}

// showCalls prints the bootc commands a host ran since call number from.
func (d *demo) showCalls(h *simHost, from int) error {
	calls, err := readCalls(h)
	if err != nil {
		return err
	}
	for _, c := range calls[from:] {
		if len(c.Argv) == 0 || c.Argv[0] == "status" || c.Argv[0] == "--version" || c.Argv[0] == "sim" && len(c.Argv) > 1 && c.Argv[1] == "health" {
			continue
		}
		fmt.Printf("      %s ran: bootc %s (pulled from the registry: %v)\n", h.name, strings.Join(c.Argv, " "), c.Pulled)
	}
	return nil
}

func (d *demo) show(ctx context.Context, args ...string) error {
	fmt.Printf("    $ bootsync %s\n", strings.Join(args, " "))
	c := exec.CommandContext(ctx, filepath.Join(d.bin, "bootsync"), args...)
	out, err := c.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("    " + line)
	}
	if err != nil {
		return fmt.Errorf("bootsync %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) edit(rel, old, new string) error {
	p := filepath.Join(d.fleet, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), old) {
		return fmt.Errorf("edit %s: %q not found", rel, old)
	}
	return os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func (d *demo) commitPush(ctx context.Context, msg string) error {
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", msg}, {"push", "-q", "origin", "HEAD:main"}} {
		if err := runIn(ctx, d.fleet, gitEnv(), "git", args...); err != nil {
			return err
		}
	}
	return nil
}

func lastError(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "error: ") {
			return strings.TrimPrefix(line, "error: ")
		}
	}
	return strings.TrimSpace(stderr)
}

func say(format string, args ...any) {
	fmt.Printf("\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

func short(ref string) string {
	if i := strings.Index(ref, "sha256:"); i >= 0 && len(ref) >= i+19 {
		return ref[i : i+19]
	}
	return ref
}

func gitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Demo Operator", "GIT_AUTHOR_EMAIL=ops@example.com",
		"GIT_COMMITTER_NAME=Demo Operator", "GIT_COMMITTER_EMAIL=ops@example.com")
}

func runIn(ctx context.Context, dir string, env []string, name string, args ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := exec.CommandContext(ctx, name, args...)
	c.Dir, c.Env = dir, env
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}

// sourceRoot finds the bootsync checkout this program was built from.
func sourceRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return filepath.Abs(root)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(wd, "examples", "fleet")); err != nil {
		return "", errors.New("run the demo from the bootsync checkout (make demo)")
	}
	return wd, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
