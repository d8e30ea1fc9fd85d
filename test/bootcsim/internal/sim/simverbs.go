package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/bootsync/bootsync/apply/bootc"
)

var digestExpr = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

const simUsage = `Simulator controls (not part of bootc)

Usage: bootc sim <COMMAND>

Commands:
  init       Create a host booted into an image, without pulling:
             --image REF --digest sha256:… [--arch A] [--version V]
             [--image-version V] [--timestamp T] [--kernel K]
             [--enforce-container-sigpolicy] [--soft-reboot-target] [--force]
  reboot     Reboot the simulated host (finalize staged / boot queued rollback)
  mark-bad   DIGEST: make 'sim health' fail while DIGEST is booted
  mark-good  DIGEST: undo mark-bad
  health     Exit 1 when the booted deployment is marked bad
  calls      Print the call log (JSON lines)
  state      Print the state file
`

func (inv *invocation) cmdSim(args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: simUsage}
	}
	switch args[0] {
	case "--help", "-h", "help":
		fmt.Fprint(inv.stdout, simUsage)
		return nil
	case "init":
		return inv.simInit(args[1:])
	case "reboot":
		return inv.simReboot(args[1:])
	case "mark-bad", "mark-good":
		return inv.simMark(args[0], args[1:])
	case "health":
		return inv.simHealth(args[1:])
	case "calls":
		return inv.simCalls(args[1:])
	case "state":
		return inv.simState(args[1:])
	}
	return &exitError{code: 2, msg: fmt.Sprintf("error: unrecognized subcommand '%s'\n\n%s", args[0], simUsage)}
}

func noArgs(verb string, pos []string) error {
	if len(pos) > 0 {
		return usage(verb, "unexpected argument '%s' found", pos[0])
	}
	return nil
}

func (inv *invocation) simInit(args []string) error {
	fs := newFlagSet("bootc sim init")
	image := fs.String("image", "", "booted image reference (empty: a host not deployed by bootc)")
	digest := fs.String("digest", "", "manifest digest of the booted image")
	arch := fs.String("arch", "", "machine architecture (default amd64)")
	version := fs.String("version", "", "simulated bootc version (default "+DefaultVersion+")")
	imageVersion := fs.String("image-version", "", "the booted image's version label")
	timestamp := fs.String("timestamp", "", "the booted image's build timestamp (RFC 3339)")
	kernel := fs.String("kernel", "", "the booted image's kernel (ostree.linux label)")
	enforce := fs.Bool("enforce-container-sigpolicy", false, "the booted deployment enforces the container signature policy")
	softRebootTarget := fs.Bool("soft-reboot-target", false, "the host has soft-reboot.target")
	force := fs.Bool("force", false, "replace an existing state file")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if err := noArgs(fs.verb, pos); err != nil {
		return err
	}
	if *version != "" {
		if _, err := bootc.ParseVersion(*version); err != nil {
			return fmt.Errorf("bootcsim: --version: %w", err)
		}
	}
	s, release, err := inv.lockedState()
	if err != nil {
		return err
	}
	defer release()
	if _, err := os.Stat(inv.cfg.StatePath); err == nil && !*force {
		return fmt.Errorf("bootcsim: %s already exists (use --force to replace it)", inv.cfg.StatePath)
	}
	s = &State{Version: *version, Arch: *arch, SoftRebootTarget: *softRebootTarget}
	if *image != "" {
		if !digestExpr.MatchString(*digest) {
			return fmt.Errorf("bootcsim: --digest %q is not sha256:<64 hex>", *digest)
		}
		ref := bootc.ImageReference{Image: *image, Transport: bootc.TransportRegistry}
		if *enforce {
			ref.Signature = &bootc.ImageSignature{Kind: bootc.SignatureContainerPolicy}
		}
		img := &pulledImage{Digest: *digest, Architecture: inv.arch(s), Kernel: *kernel}
		if *imageVersion != "" {
			img.Version = imageVersion
		}
		if *timestamp != "" {
			img.Timestamp = timestamp
		}
		s.Booted = s.newDeployment(ref, img)
	} else if *digest != "" {
		return errors.New("bootcsim: --digest needs --image")
	}
	if err := os.MkdirAll(filepath.Join(inv.cfg.Root, "etc"), 0o755); err != nil {
		return fmt.Errorf("bootcsim: creating the host root: %w", err)
	}
	if err := inv.writeBootID(); err != nil {
		return err
	}
	return inv.save(s)
}

func (inv *invocation) simReboot(args []string) error {
	fs := newFlagSet("bootc sim reboot")
	shutdown := fs.Bool("shutdown", false, "end like a real reboot command: die by SIGKILL, killing the caller too with BOOTCSIM_KILL_PARENT=1 (for an agent's reboot command)")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if err := noArgs(fs.verb, pos); err != nil {
		return err
	}
	s, release, err := inv.lockedState()
	if err != nil {
		return err
	}
	defer release()
	if err := inv.reboot(s); err != nil {
		return err
	}
	last := s.Boots[len(s.Boots)-1]
	fmt.Fprintf(inv.stdout, "bootcsim: rebooted (%s) into %s\n", last.Outcome, last.Digest)
	inv.rebooted = *shutdown
	return nil
}

func (inv *invocation) simMark(verb string, args []string) error {
	fs := newFlagSet("bootc sim " + verb)
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if len(pos) != 1 || !digestExpr.MatchString(pos[0]) {
		return usage(fs.verb, "expected exactly one argument, a digest sha256:<64 hex>")
	}
	s, release, err := inv.lockedState()
	if err != nil {
		return err
	}
	defer release()
	s.Bad = slices.DeleteFunc(s.Bad, func(d string) bool { return d == pos[0] })
	if verb == "mark-bad" {
		s.Bad = append(s.Bad, pos[0])
	}
	return inv.save(s)
}

// simHealth is a health check for tests: `command: [bootc, sim, health]`.
func (inv *invocation) simHealth(args []string) error {
	fs := newFlagSet("bootc sim health")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if err := noArgs(fs.verb, pos); err != nil {
		return err
	}
	if err := inv.requireEnv(); err != nil {
		return err
	}
	s, err := loadState(inv.cfg.StatePath)
	if err != nil {
		return err
	}
	switch {
	case s.Booted == nil:
		return &exitError{code: 1, msg: "bootcsim: unhealthy: no booted deployment\n"}
	case s.isBad(s.Booted.Digest):
		return &exitError{code: 1, msg: fmt.Sprintf("bootcsim: unhealthy: booted image %s is marked bad\n", s.Booted.Digest)}
	}
	fmt.Fprintf(inv.stdout, "bootcsim: healthy: %s\n", s.Booted.Digest)
	return nil
}

func (inv *invocation) simCalls(args []string) error {
	fs := newFlagSet("bootc sim calls")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if err := noArgs(fs.verb, pos); err != nil {
		return err
	}
	if inv.cfg.LogPath == "" {
		return fmt.Errorf("bootcsim: %s is not set; no calls are logged", EnvLog)
	}
	data, err := os.ReadFile(inv.cfg.LogPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bootcsim: reading the call log: %w", err)
	}
	_, err = inv.stdout.Write(data)
	return err
}

func (inv *invocation) simState(args []string) error {
	fs := newFlagSet("bootc sim state")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if err := noArgs(fs.verb, pos); err != nil {
		return err
	}
	if err := inv.requireEnv(); err != nil {
		return err
	}
	s, err := loadState(inv.cfg.StatePath)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("bootcsim: encoding state: %w", err)
	}
	_, err = inv.stdout.Write(append(data, '\n'))
	return err
}

// LoadState reads a simulator state file (for test helpers).
func LoadState(path string) (*State, error) { return loadState(path) }
