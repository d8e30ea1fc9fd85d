// Package sim is the bootc simulator behind test/bootcsim/cmd/bootc. It
// speaks bootc's command line (status, switch, upgrade, rollback and
// --version) against a state file instead of an ostree sysroot, pulls
// images from real registries, and adds `bootc sim …` verbs for tests.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bootsync/bootsync/apply/bootc"
)

// DefaultVersion is the bootc release the simulator claims to be.
const DefaultVersion = "1.16.9"

// DefaultArch is the simulated machine's architecture.
const DefaultArch = "amd64"

// Environment variables that configure the simulator.
const (
	EnvState      = "BOOTCSIM_STATE"
	EnvRoot       = "BOOTCSIM_ROOT"
	EnvLog        = "BOOTCSIM_LOG"
	EnvInsecure   = "BOOTCSIM_INSECURE_REGISTRIES"
	EnvVersion    = "BOOTCSIM_VERSION"
	EnvArch       = "BOOTCSIM_ARCH"
	EnvKillParent = "BOOTCSIM_KILL_PARENT"
)

// Config is one invocation's environment.
type Config struct {
	StatePath  string   // BOOTCSIM_STATE: the state file
	Root       string   // BOOTCSIM_ROOT: the simulated host root; Root/etc is the live /etc
	LogPath    string   // BOOTCSIM_LOG: the call log (JSON lines); empty = no log
	Insecure   []string // BOOTCSIM_INSECURE_REGISTRIES: host:port reached over plain HTTP
	Version    string   // BOOTCSIM_VERSION: overrides the state's version
	Arch       string   // BOOTCSIM_ARCH: overrides the state's architecture
	KillParent bool     // BOOTCSIM_KILL_PARENT=1: --apply also SIGKILLs the calling process
	// StdoutIsTerminal selects bootc's default status format
	// (human-readable on a terminal, YAML otherwise).
	StdoutIsTerminal bool
}

// ConfigFromEnv reads the BOOTCSIM_* variables.
func ConfigFromEnv(getenv func(string) string) Config {
	c := Config{
		StatePath:  getenv(EnvState),
		Root:       getenv(EnvRoot),
		LogPath:    getenv(EnvLog),
		Version:    getenv(EnvVersion),
		Arch:       getenv(EnvArch),
		KillParent: getenv(EnvKillParent) == "1",
	}
	for _, r := range strings.Split(getenv(EnvInsecure), ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.Insecure = append(c.Insecure, r)
		}
	}
	return c
}

// Outcome is how the process must end.
type Outcome struct {
	ExitCode int
	// Rebooted: an --apply rebooted the simulated host. Like real bootc,
	// whose process is killed by the shutdown it started, the process must
	// now die by SIGKILL (after killing its parent when KillParent is set).
	Rebooted bool
}

// Call is one line of the call log.
type Call struct {
	Time     time.Time `json:"time"`
	Argv     []string  `json:"argv"` // arguments after "bootc"
	Exit     int       `json:"exit"` // 137 when the process was killed by the simulated reboot
	Pulled   bool      `json:"pulled"`
	Rebooted bool      `json:"rebooted"`
}

// invocation carries one run's context.
type invocation struct {
	ctx    context.Context
	cfg    Config
	stdout io.Writer
	stderr io.Writer

	pulled   bool // contacted a registry
	rebooted bool // --apply rebooted the host
}

// exitError ends a verb with a specific exit code and message.
type exitError struct {
	code int
	msg  string // printed verbatim to stderr
}

func (e *exitError) Error() string { return e.msg }

// usage is clap's exit-2 error for verb (e.g. "bootc upgrade").
func usage(verb, format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf("error: "+format+"\n\nUsage: %s [OPTIONS]\n\nFor more information, try '--help'.\n", append(args, verb)...)}
}

// Run executes one simulated bootc command.
func Run(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) Outcome {
	inv := &invocation{ctx: ctx, cfg: cfg, stdout: stdout, stderr: stderr}
	err := inv.dispatch(args)
	code := 0
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			fmt.Fprint(stderr, ee.msg)
		} else {
			code = 1
			fmt.Fprintf(stderr, "error: %v\n", err)
		}
	}
	out := Outcome{ExitCode: code, Rebooted: inv.rebooted && code == 0}
	if logged(args) {
		call := Call{Time: time.Now().UTC(), Argv: args, Exit: code, Pulled: inv.pulled, Rebooted: out.Rebooted}
		if out.Rebooted {
			call.Exit = 137
		}
		if err := appendCall(cfg.LogPath, call); err != nil {
			fmt.Fprintf(stderr, "bootcsim: %v\n", err)
			if out.ExitCode == 0 && !out.Rebooted {
				out.ExitCode = 1
			}
		}
	}
	return out
}

// logged: every call is logged except the simulator's own read-only verbs.
func logged(args []string) bool {
	return !(len(args) >= 2 && args[0] == "sim" && (args[1] == "calls" || args[1] == "state"))
}

func appendCall(path string, c Call) error {
	if path == "" {
		return nil
	}
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode call log entry: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open call log: %w", err)
	}
	// One write per line: O_APPEND keeps concurrent lines whole.
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write call log: %w", err)
	}
	return f.Close()
}

// ReadCalls parses a call log.
func ReadCalls(path string) ([]Call, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read call log: %w", err)
	}
	var calls []Call
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var c Call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return nil, fmt.Errorf("call log line %d: %w", i+1, err)
		}
		calls = append(calls, c)
	}
	return calls, nil
}

const topUsage = `A transactional, in-place operating system update using OCI/Docker container images (bootsync's bootc simulator)

Usage: bootc <COMMAND>

Commands:
  upgrade   Download and queue an updated container image to apply
  switch    Target a new container image reference to boot
  rollback  Change the bootloader entry ordering
  status    Display status
  sim       Simulator controls (not part of bootc)

Options:
  -h, --help     Print help
  -V, --version  Print version
`

func (inv *invocation) dispatch(args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: topUsage}
	}
	switch args[0] {
	case "--version", "-V":
		v, err := inv.version()
		if err != nil {
			return err
		}
		fmt.Fprintf(inv.stdout, "bootc %s\n", v)
		return nil
	case "--help", "-h", "help":
		fmt.Fprint(inv.stdout, topUsage)
		return nil
	case "status":
		return inv.cmdStatus(args[1:])
	case "switch":
		return inv.cmdSwitch(args[1:])
	case "upgrade", "update":
		return inv.cmdUpgrade(args[1:])
	case "rollback":
		return inv.cmdRollback(args[1:])
	case "sim":
		return inv.cmdSim(args[1:])
	}
	if strings.HasPrefix(args[0], "-") {
		return &exitError{code: 2, msg: fmt.Sprintf("error: unexpected argument '%s' found\n\nUsage: bootc <COMMAND>\n\nFor more information, try '--help'.\n", args[0])}
	}
	return &exitError{code: 2, msg: fmt.Sprintf("error: unrecognized subcommand '%s'\n\nUsage: bootc <COMMAND>\n\nFor more information, try '--help'.\n", args[0])}
}

// version is the simulated bootc version: BOOTCSIM_VERSION, else the
// state's, else DefaultVersion.
func (inv *invocation) version() (bootc.Version, error) {
	raw := inv.cfg.Version
	if raw == "" && inv.cfg.StatePath != "" {
		s, err := loadState(inv.cfg.StatePath)
		if err != nil {
			return bootc.Version{}, err
		}
		raw = s.Version
	}
	if raw == "" {
		raw = DefaultVersion
	}
	v, err := bootc.ParseVersion(raw)
	if err != nil {
		return bootc.Version{}, fmt.Errorf("bootcsim: simulated version: %w", err)
	}
	return v, nil
}

func (inv *invocation) arch(s *State) string {
	switch {
	case inv.cfg.Arch != "":
		return inv.cfg.Arch
	case s != nil && s.Arch != "":
		return s.Arch
	}
	return DefaultArch
}

// requireEnv checks the configuration every stateful verb needs.
func (inv *invocation) requireEnv() error {
	if inv.cfg.StatePath == "" {
		return fmt.Errorf("bootcsim: %s must name the simulator's state file", EnvState)
	}
	if inv.cfg.Root == "" {
		// Never default to "/": the simulator would rewrite the real /etc.
		return fmt.Errorf("bootcsim: %s must name the simulated host root", EnvRoot)
	}
	return nil
}

// flagSet is a pflag set whose errors become clap-style exit-2 errors.
type flagSet struct {
	*pflag.FlagSet
	verb string // "bootc upgrade"
}

func newFlagSet(verb string) *flagSet {
	fs := pflag.NewFlagSet(verb, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return &flagSet{FlagSet: fs, verb: verb}
}

// parse parses args and returns the positional arguments.
func (f *flagSet) parse(args []string, stdout io.Writer) ([]string, bool, error) {
	err := f.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: %s [OPTIONS]\n\nOptions:\n%s", f.verb, f.FlagUsages())
		return nil, true, nil
	}
	if err != nil {
		var notExist *pflag.NotExistError
		var needsValue *pflag.ValueRequiredError
		var invalid *pflag.InvalidValueError
		switch {
		case errors.As(err, &notExist):
			name := "--" + notExist.GetSpecifiedName()
			if s := notExist.GetSpecifiedShortnames(); s != "" {
				name = "-" + s
			}
			return nil, false, usage(f.verb, "unexpected argument '%s' found", name)
		case errors.As(err, &needsValue):
			return nil, false, usage(f.verb, "a value is required for '--%s <%s>' but none was supplied",
				needsValue.GetSpecifiedName(), strings.ToUpper(strings.ReplaceAll(needsValue.GetSpecifiedName(), "-", "_")))
		case errors.As(err, &invalid):
			return nil, false, usage(f.verb, "invalid value for '--%s': %v", invalid.GetFlag().Name, invalid.GetValue())
		}
		return nil, false, usage(f.verb, "%v", err)
	}
	return f.Args(), false, nil
}

// conflicts reports clap's "cannot be used with" error for the first pair
// of flags that were both given.
func (f *flagSet) conflicts(pairs ...[2]string) error {
	for _, p := range pairs {
		a, b := f.Lookup(p[0]), f.Lookup(p[1])
		if a != nil && b != nil && a.Changed && b.Changed {
			return usage(f.verb, "the argument '--%s' cannot be used with '--%s'", p[0], p[1])
		}
	}
	return nil
}

// softRebootFlag registers --soft-reboot when the version has it.
func (f *flagSet) softRebootFlag(v bootc.Version) *string {
	if !v.SupportsSoftReboot() {
		return new(string)
	}
	return f.String("soft-reboot", "", "Prepare a soft reboot: auto | required")
}

func checkSoftRebootValue(verb, mode string) error {
	switch mode {
	case "", "auto", "required":
		return nil
	}
	return usage(verb, "invalid value '%s' for '--soft-reboot <SOFT_REBOOT>'\n  [possible values: required, auto]", mode)
}

// lockedState takes the sysroot lock and loads the state; call release
// when done.
func (inv *invocation) lockedState() (*State, func(), error) {
	if err := inv.requireEnv(); err != nil {
		return nil, nil, err
	}
	lock, err := lockSysroot(inv.cfg.StatePath, func() { fmt.Fprintln(inv.stderr, "Waiting for sysroot lock...") })
	if err != nil {
		return nil, nil, err
	}
	s, err := loadState(inv.cfg.StatePath)
	if err != nil {
		lock.unlock()
		return nil, nil, err
	}
	return s, lock.unlock, nil
}

func (inv *invocation) save(s *State) error { return saveState(inv.cfg.StatePath, s) }
