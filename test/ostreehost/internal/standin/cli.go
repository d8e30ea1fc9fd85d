// Package standin is the bootc stand-in of the ostree test host
// (test/ostreehost/cmd/bootc): bootc's command line over a real ostree
// sysroot, with libostree doing every deployment operation. See package
// github.com/bootsync/bootsync/test/ostreehost for what it models.
package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// Version is the bootc release whose CLI the stand-in speaks.
const Version = "1.16.9"

// Environment of the stand-in.
const (
	// EnvInsecure lists registries (host:port) reached over plain HTTP,
	// comma-separated (bootc reads registries.conf; the test host passes
	// this instead).
	EnvInsecure = "OSTREEHOST_INSECURE_REGISTRIES"
	// EnvCallLog is the call log (JSON lines); default CallLog.
	EnvCallLog = "OSTREEHOST_CALL_LOG"
)

// CallLog is where the stand-in logs its calls inside the host: in /var,
// which all deployments share, so the log survives reboots.
const CallLog = "/var/log/ostreehost/bootc-calls.jsonl"

// Call is one line of the call log.
type Call struct {
	Time     time.Time `json:"time"`
	Argv     []string  `json:"argv"` // arguments after "bootc"
	Exit     int       `json:"exit"` // 137: ended by the reboot it started
	Pulled   bool      `json:"pulled"`
	Blobs    int64     `json:"blobs"` // blobs fetched from the registry
	Rebooted bool      `json:"rebooted"`
}

// exitError ends a verb with a code and a message printed as is.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usage(verb, format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf("error: "+format+"\n\nUsage: %s [OPTIONS]\n\nFor more information, try '--help'.\n", append(args, verb)...)}
}

// invocation is one run of the stand-in.
type invocation struct {
	ctx      context.Context
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	sysroot  Sysroot
	importer *Importer
	rebooted bool // --apply: the caller is about to be killed by the reboot
}

// Main runs the stand-in: `systemctl` when called by that name (the
// test host's power control), else bootc. It returns the exit code.
func Main(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	if filepath.Base(argv[0]) == "systemctl" {
		return systemctl(argv[1:], stdout, stderr)
	}
	inv := &invocation{ctx: ctx, stdout: stdout, stderr: stderr, getenv: os.Getenv, sysroot: Sysroot{Path: "/"}}
	inv.importer = &Importer{Sysroot: inv.sysroot, Insecure: splitList(os.Getenv(EnvInsecure))}
	args := argv[1:]
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
	// Only calls in a booted test host are logged (in its /var).
	if _, err := os.Stat("/run/ostree-booted"); err == nil && logged(args) {
		c := Call{Time: time.Now().UTC(), Argv: args, Exit: code, Pulled: inv.importer.Requests.Load() > 0,
			Blobs: inv.importer.Blobs.Load(), Rebooted: inv.rebooted && code == 0}
		if c.Rebooted {
			c.Exit = 137
		}
		if err := appendCall(inv.callLog(), c); err != nil {
			fmt.Fprintf(stderr, "bootc stand-in: %v\n", err)
		}
	}
	if inv.rebooted && code == 0 {
		return powerOff(stderr)
	}
	return code
}

func splitList(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// logged: calls the host makes, not the harness's own verbs.
func logged(args []string) bool {
	return len(args) > 0 && args[0] != "ostreehost"
}

func (inv *invocation) callLog() string {
	if p := inv.getenv(EnvCallLog); p != "" {
		return p
	}
	return CallLog
}

func appendCall(path string, c Call) error {
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode call log entry: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("call log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("call log: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("call log: %w", err)
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

const topUsage = `A transactional, in-place operating system update using OCI/Docker container images (bootsync's bootc stand-in over a real ostree sysroot)

Usage: bootc <COMMAND>

Commands:
  upgrade    Download and queue an updated container image to apply
  switch     Target a new container image reference to boot
  rollback   Change the bootloader entry ordering
  status     Display status
  ostreehost Test host controls (not part of bootc): boot, install
`

func (inv *invocation) dispatch(args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: topUsage}
	}
	switch args[0] {
	case "--version", "-V":
		fmt.Fprintf(inv.stdout, "bootc %s\n", Version)
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
	case "ostreehost":
		return inv.cmdHost(args[1:])
	}
	return &exitError{code: 2, msg: fmt.Sprintf("error: unrecognized subcommand '%s'\n\nUsage: bootc <COMMAND>\n\nFor more information, try '--help'.\n", args[0])}
}

// flagSet is a pflag set whose errors become clap-style exit-2 errors.
type flagSet struct {
	*pflag.FlagSet
	verb string
}

func newFlagSet(verb string) *flagSet {
	fs := pflag.NewFlagSet(verb, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, verb: verb}
}

func (f *flagSet) parse(args []string) ([]string, error) {
	if err := f.Parse(args); err != nil {
		return nil, usage(f.verb, "%v", err)
	}
	return f.Args(), nil
}

// conflicts reports clap's error for the first pair of flags both given.
func (f *flagSet) conflicts(pairs ...[2]string) error {
	for _, p := range pairs {
		a, b := f.Lookup(p[0]), f.Lookup(p[1])
		if a != nil && b != nil && a.Changed && b.Changed {
			return usage(f.verb, "the argument '--%s' cannot be used with '--%s'", p[0], p[1])
		}
	}
	return nil
}

// lock serializes the stand-in's writers like bootc's hold on the sysroot
// lock (ostree's own lock is taken by each ostree call underneath).
func (inv *invocation) lock() (func(), error) {
	f, err := os.OpenFile("/run/ostreehost-bootc.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sysroot lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintln(inv.stderr, "Waiting for sysroot lock...")
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock sysroot: %w", err)
		}
	}
	return func() { f.Close() }, nil
}

func (inv *invocation) cmdStatus(args []string) error {
	fs := newFlagSet("bootc status")
	format := fs.String("format", "", "humanreadable | yaml | json")
	jsonFlag := fs.Bool("json", false, "Output in JSON format (deprecated)")
	formatVersion := fs.String("format-version", "", "0 or 1")
	bootedOnly := fs.Bool("booted", false, "Only display the booted deployment")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usage(fs.verb, "unexpected argument '%s' found", pos[0])
	}
	if *formatVersion != "" && *formatVersion != "0" && *formatVersion != "1" {
		return fmt.Errorf("Status: Unsupported format version: %s", *formatVersion)
	}
	out := *format
	if out == "" && *jsonFlag {
		out = "json"
	}
	if out != "json" {
		return fmt.Errorf("the ostree test host prints status as JSON only (--format=json), not %q", out)
	}
	st, err := inv.sysroot.LoadState(inv.ctx)
	if err != nil {
		return fmt.Errorf("Computing status: %w", err)
	}
	h, err := HostStatus(st)
	if err != nil {
		return fmt.Errorf("Computing status: %w", err)
	}
	if *bootedOnly {
		h.Status.Staged, h.Status.Rollback = nil, nil
	}
	data, err := renderJSON(h)
	if err != nil {
		return err
	}
	_, err = inv.stdout.Write(data)
	return err
}
