package hostspec

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"strconv"
	"time"
	"unicode/utf8"
)

// APIVersion is the only schema version this build understands.
const APIVersion = "bootsync.dev/v1alpha1"

// Document kinds in a fleet repository.
const (
	KindFleet = "Fleet"
	KindGroup = "Group"
	KindHost  = "Host"
	KindLock  = "Lock"
)

// Well-known paths inside a fleet repository.
const (
	FleetFile = "fleet.yaml"
	GroupsDir = "groups"
	HostsDir  = "hosts"
	LockFile  = "bootsync.lock"
)

// Source says where a value was set: a file of the fleet repository and the
// 1-based line and column of the YAML node that set it.
type Source struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column,omitempty"`
	// From is the repository path a file's content came from (a `from:` file
	// or a file inside a `from:` directory); empty for inline content.
	From string `json:"from,omitempty"`
}

// String renders the source as "file:line", the form used by --explain.
func (s Source) String() string {
	if s.File == "" {
		return "(default)"
	}
	out := s.File + ":" + strconv.Itoa(s.Line)
	if s.From != "" {
		out += " (" + s.From + ")"
	}
	return out
}

// HostSpec is the fully resolved desired state of one host at one revision
// of the fleet repository: what the agent converges to and what `render`,
// `diff` and `plan` print. Its JSON form is a documented, stable interface.
type HostSpec struct {
	Host     string            `json:"host"`
	Labels   map[string]string `json:"labels"`
	Bucket   int               `json:"bucket"`
	Revision string            `json:"revision"`
	// Groups lists the matched groups in the order they were applied.
	Groups []string       `json:"groups"`
	Image  Image          `json:"image"`
	Etc    []EtcFile      `json:"etc"`    // sorted by Path
	Health []HealthCheck  `json:"health"` // sorted by Name; disabled checks are dropped
	Update UpdatePolicy   `json:"update"`
	Vars   map[string]any `json:"vars"`
	Policy Policy         `json:"policy"`
	// MachineID is the host file's metadata.machineID: the agent applies
	// the spec only on the machine whose /etc/machine-id it is.
	MachineID string `json:"machineID,omitempty"`
	// Warnings are what cannot be checked for this host (a secret whose
	// recipients cannot be known without a key), "warning: …".
	Warnings ErrorList `json:"warnings,omitempty"`
	// Provenance maps a value's path to the place that set it. Keys:
	// "image", "vars.<key>", "update.<key>", "policy.<key>",
	// "etc[<path>]", "health[<name>]" and "health[<name>].<key>".
	Provenance map[string]Source `json:"provenance"`
}

// Image is the OS image a host should boot.
type Image struct {
	// Ref is the reference as written in the fleet repo (tag or digest form).
	Ref string `json:"ref"`
	// Digest is the pinned digest: taken from Ref when it is digest-pinned,
	// else from bootsync.lock; empty when only a tag is known (the agent then
	// resolves it with one registry request).
	Digest string `json:"digest,omitempty"`
	// Locked is true when Digest came from bootsync.lock.
	Locked bool   `json:"locked,omitempty"`
	Source Source `json:"source"`
}

// EtcFile is one materialized file under /etc: its final content after
// templating, or Absent when the spec asks for the path to be removed.
type EtcFile struct {
	Path     string    `json:"path"`
	Mode     FileMode  `json:"mode"`
	Owner    string    `json:"owner"`
	Group    string    `json:"group"`
	SHA256   string    `json:"sha256,omitempty"`
	Content  []byte    `json:"-"` // marshalled by EtcFile.MarshalJSON
	Absent   bool      `json:"absent,omitempty"`
	OnChange *OnChange `json:"onChange,omitempty"`
	Source   Source    `json:"source"`
	// Secret is set when the content comes from an encrypted file: Content
	// and SHA256 are then empty (plaintext after HostSpec.Decrypted), and
	// JSON never carries the content.
	Secret *SecretRef `json:"secret,omitempty"`
}

// MarshalJSON writes Content as a string when it is valid UTF-8 and as
// contentBase64 otherwise, so text files stay readable in PR comments.
func (f EtcFile) MarshalJSON() ([]byte, error) {
	type plain EtcFile
	out := struct {
		plain
		Content       *string `json:"content,omitempty"`
		ContentBase64 []byte  `json:"contentBase64,omitempty"`
	}{plain: plain(f)}
	if !f.Absent && f.Secret == nil {
		if isText(f.Content) {
			s := string(f.Content)
			out.Content = &s
		} else {
			out.ContentBase64 = f.Content
		}
	}
	return json.Marshal(out)
}

// OnChange lists what to do when a file's content or metadata actually changed.
type OnChange struct {
	Restart []string `json:"restart,omitempty" yaml:"restart"` // systemd units to restart
	Reload  []string `json:"reload,omitempty" yaml:"reload"`   // systemd units to reload
	Reboot  bool     `json:"reboot,omitempty" yaml:"reboot"`   // the change only takes effect after a reboot
}

// HealthCheck is one post-update check. Exactly one of Systemd, HTTP, TCP
// and Command is set.
type HealthCheck struct {
	Name     string   `json:"name"`
	Systemd  string   `json:"systemd,omitempty"` // unit that must be active
	HTTP     string   `json:"http,omitempty"`    // URL that must answer 2xx
	Expect   string   `json:"expect,omitempty"`  // http: substring the body must contain
	TCP      string   `json:"tcp,omitempty"`     // host:port that must accept a connection
	Command  []string `json:"command,omitempty"` // argv that must exit 0
	Timeout  Duration `json:"timeout"`
	Interval Duration `json:"interval"`
	Retries  int      `json:"retries"`
	Required bool     `json:"required"`
	Source   Source   `json:"source"`
}

// RebootStrategy says when a staged update may reboot the host.
type RebootStrategy string

// Reboot strategies.
const (
	RebootImmediate       RebootStrategy = "immediate"        // reboot as soon as an update is staged
	RebootWindow          RebootStrategy = "window"           // only inside update.windows
	RebootFleetLock       RebootStrategy = "fleetlock"        // only with a FleetLock slot
	RebootWindowFleetLock RebootStrategy = "window+fleetlock" // inside a window and with a slot
	RebootManual          RebootStrategy = "manual"           // stage only; `bootsync reboot` applies
)

// UpdatePolicy says how and when a host applies changes.
type UpdatePolicy struct {
	Reboot    RebootStrategy `json:"reboot"`
	Windows   []Window       `json:"windows,omitempty"`
	FleetLock *FleetLock     `json:"fleetlock,omitempty"`
	// Paused stops new changes; drift is still reported.
	Paused bool `json:"paused"`
	// Grace is how long health checks may keep failing after a boot into a
	// new image before the verdict.
	Grace Duration `json:"grace"`
	// SoftReboot allows a userspace-only reboot when bootc says the staged
	// deployment is capable of one.
	SoftReboot bool `json:"softReboot"`
	// DeferRebootWhileUsers holds a reboot while interactive sessions
	// exist, for at most MaxDeferral.
	DeferRebootWhileUsers bool     `json:"deferRebootWhileUsers"`
	MaxDeferral           Duration `json:"maxDeferral"`
}

// Defaults applied to update policies that do not set them.
const (
	DefaultGrace       = 5 * time.Minute
	DefaultMaxDeferral = 24 * time.Hour
)

// Window is a weekly maintenance window in an IANA time zone.
type Window struct {
	Days     []string `json:"days"`     // mon..sun
	Start    string   `json:"start"`    // "HH:MM", local to Timezone
	Duration Duration `json:"duration"` //
	Timezone string   `json:"timezone"` // IANA name; default UTC
}

// FleetLock names the reboot coordinator (Zincati's FleetLock protocol).
type FleetLock struct {
	URL   string `json:"url"`
	Group string `json:"group"` // default "default"
}

// Policy is the fleet-wide image policy from fleet.yaml. It can only add
// requirements to the trust configured on each host.
type Policy struct {
	// Registries lists allowed repository prefixes ("registry.example.com/os").
	Registries        []string `json:"registries,omitempty"`
	RequireSignatures bool     `json:"requireSignatures"`
}

// FileMode is a permission mode written in YAML and JSON as an octal
// string ("0644").
type FileMode fs.FileMode

// String renders the mode as four octal digits.
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalJSON writes the mode as an octal string.
func (m FileMode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads the octal string MarshalJSON writes.
func (m *FileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	v, err := ParseFileMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalYAML writes the mode as an octal string.
func (m FileMode) MarshalYAML() (any, error) { return m.String(), nil }

// ParseFileMode parses "0644" or "644" (octal, at most 07777).
func ParseFileMode(s string) (FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal permission like \"0644\"", s)
	}
	return FileMode(v), nil
}

// Duration is a time.Duration written as "5s", "10m" or "1h30m".
type Duration time.Duration

// String renders the duration the way time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string ("5m0s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads the string MarshalJSON writes.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// isText reports whether b can be shown as a JSON string without loss.
func isText(b []byte) bool { return utf8.Valid(b) }

// DefaultCheckRequired is whether a health check that does not say
// `required:` counts towards the verdict: a failing required check rolls the
// update back, a failing optional one is only reported.
const DefaultCheckRequired = true

// Defaults applied to health checks that do not set them.
const (
	DefaultCheckTimeout  = 10 * time.Second
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckRetries  = 3
)
