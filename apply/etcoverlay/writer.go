// Package etcoverlay writes a host's resolved /etc overlay
// ([]hostspec.EtcFile) under a root directory ("/" on a host, a temporary
// directory in tests), and keeps a manifest of the files it manages in the
// agent's state directory.
//
// The directory is apply/etc; the package is named etcoverlay because "etc"
// reads badly at call sites.
//
// Guarantees:
//   - Each file is replaced atomically (temporary file in the same directory,
//     fsync, fchown, fchmod, rename, directory fsync): readers and a power
//     loss see the old or the new file, never a torn one.
//   - Nothing under the root is reached through a symbolic link: directories
//     are opened one component at a time with O_NOFOLLOW and files are
//     handled relative to their parent's descriptor. A symlinked parent or a
//     target that is not a regular file is refused with an error naming it.
//   - The manifest records an intent before anything on disk changes and the
//     outcome after, both durably, so a pass killed at any point loses no file
//     and the next Plan recognizes every file bootsync wrote (no false drift,
//     no missed prune) and still owes the restarts of the interrupted pass.
//   - A file that left the spec is removed only while it still holds what
//     bootsync wrote; a local edit is reported as drift and left alone. A file
//     that existed before bootsync first replaced it is put back instead of
//     deleted.
//   - Owners and groups are resolved with the root's own /etc/passwd and
//     /etc/group (then /usr/lib/passwd and /usr/lib/group, nss-altfiles).
package etcoverlay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/bootsync/bootsync/hostspec"
)

// Defaults for the options.
const (
	DefaultDiffLimit  = 64 << 10
	DefaultBootIDFile = "/proc/sys/kernel/random/boot_id"
)

// Writer plans and applies an /etc overlay under one root, with its record
// in one state directory. It is safe for concurrent use; Apply and
// RunOnChange serialize on a lock file in the state directory, also against
// other processes.
type Writer struct {
	root       string
	stateDir   string
	systemctl  []string
	diffLimit  int
	bootIDFile string
	labels     LabelSource // nil: SELinux labelling off
	secretKey  []byte      // for secret files' digests; nil: no secrets

	// The parsed manifest, reused while the file is the same one: the
	// agent's no-op pass then costs no JSON decoding.
	cacheMu  sync.Mutex
	cacheKey manifestKey
	cached   *manifest
}

// Option configures a Writer.
type Option func(*options) error

type options struct {
	systemctl  []string
	diffLimit  int
	bootIDFile string
	labels     LabelSource
	secretKey  []byte
}

// WithSystemctl sets the command used for onChange actions; the verb and
// unit are appended ("systemctl" "restart" "chronyd.service"). Default
// "systemctl".
func WithSystemctl(argv ...string) Option {
	return func(o *options) error {
		if len(argv) == 0 || argv[0] == "" {
			return errors.New("WithSystemctl: the command must not be empty")
		}
		o.systemctl = append([]string(nil), argv...)
		return nil
	}
}

// WithDiffLimit sets the largest file (bytes) whose before and after content
// a Change carries for display; larger files are compared by digest only.
// Default DefaultDiffLimit.
func WithDiffLimit(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("WithDiffLimit: %d is not a positive size", n)
		}
		o.diffLimit = n
		return nil
	}
}

// WithBootIDFile sets the file holding the kernel's boot ID, which tells
// the writer whether the host rebooted since it recorded owed restarts or a
// required reboot (a reboot puts every change into effect). Default
// DefaultBootIDFile. An unreadable file means "unknown": restarts stay owed
// until run, and a required reboot is reported only by the Apply that made
// the change.
func WithBootIDFile(p string) Option {
	return func(o *options) error {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("WithBootIDFile: %q is not an absolute path", p)
		}
		o.bootIDFile = p
		return nil
	}
}

// New returns a Writer for the tree under root (absolute; "/" on a host)
// that keeps its manifest in stateDir (absolute; created by the first
// Apply). New does no I/O.
func New(root, stateDir string, opts ...Option) (*Writer, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("new /etc writer: root %q is not an absolute path", root)
	}
	if !filepath.IsAbs(stateDir) {
		return nil, fmt.Errorf("new /etc writer: state directory %q is not an absolute path", stateDir)
	}
	o := options{systemctl: []string{"systemctl"}, diffLimit: DefaultDiffLimit, bootIDFile: DefaultBootIDFile}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new /etc writer: %w", err)
		}
	}
	return &Writer{
		root:       filepath.Clean(root),
		stateDir:   filepath.Clean(stateDir),
		systemctl:  o.systemctl,
		diffLimit:  o.diffLimit,
		bootIDFile: o.bootIDFile,
		labels:     o.labels,
		secretKey:  o.secretKey,
	}, nil
}

// Root is the directory the writer treats as "/".
func (w *Writer) Root() string { return w.root }

// FileState is a file as found on disk or as it will be written.
type FileState struct {
	Exists bool              `json:"exists"`
	SHA256 string            `json:"sha256,omitempty"`
	Size   int64             `json:"size,omitempty"`
	Mode   hostspec.FileMode `json:"mode,omitempty"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
}

func stateOf(f *fileState, size int64) FileState {
	if f == nil {
		return FileState{}
	}
	return FileState{Exists: true, SHA256: f.SHA256, Size: size, Mode: f.Mode, UID: f.UID, GID: f.GID}
}

// ChangeKind says what a Change does to a path.
type ChangeKind string

// Kinds of change.
const (
	ChangeCreate ChangeKind = "create" // write a file that does not exist
	ChangeUpdate ChangeKind = "update" // rewrite a file whose content or metadata differ
	ChangeDelete ChangeKind = "delete" // remove a file (absent in the spec, or pruned)
	// ChangeRestore puts back the file bootsync replaced when it first
	// managed the path, because the path left the spec.
	ChangeRestore ChangeKind = "restore"
)

// Change is one planned modification of a file under the root.
type Change struct {
	Kind ChangeKind `json:"kind"`
	Path string     `json:"path"` // host path: /etc/chrony.conf
	// Reason says why, for people: "new file", "content differs, mode 0644 → 0600", "left the spec".
	Reason string    `json:"reason"`
	Before FileState `json:"before"`
	After  FileState `json:"after"`
	// BeforeContent and AfterContent are the content for a diff, nil when
	// the side does not exist or is larger than the diff limit
	// (ContentOmitted). See Text.
	BeforeContent  []byte             `json:"-"`
	AfterContent   []byte             `json:"-"`
	ContentOmitted bool               `json:"contentOmitted,omitempty"`
	Owner          string             `json:"owner,omitempty"`
	Group          string             `json:"group,omitempty"`
	OnChange       *hostspec.OnChange `json:"onChange,omitempty"`
	Source         string             `json:"source,omitempty"` // spec source (file:line) of the entry
	// Prune is set on deletes and restores of paths that left the spec.
	Prune bool `json:"prune,omitempty"`

	rel           string      // "etc/chrony.conf"
	beforeKind    fileKind    // what the plan saw at the path
	content       []byte      // the full content to write
	want          *fileState  // nil for a delete
	backupCurrent bool        // keep the current file as Original before writing
	final         *entry      // manifest entry once done; nil: forget the path
	owed          owedActions // what the change needs once done
	label         string      // SELinux label to give the written file ("": none)
	digest        digester    // how the plan hashed the path
}

// ContentChanged reports whether the change alters the file's content (or
// its existence).
func (c Change) ContentChanged() bool {
	return c.Before.Exists != c.After.Exists || c.Before.SHA256 != c.After.SHA256
}

// MetadataChanged reports whether the change alters mode or ownership of a
// file that exists before and after.
func (c Change) MetadataChanged() bool {
	return c.Before.Exists && c.After.Exists &&
		(c.Before.Mode != c.After.Mode || c.Before.UID != c.After.UID || c.Before.GID != c.After.GID)
}

// Text returns both sides as text for a unified diff, and false when either
// side was omitted for size or is not UTF-8 text. A missing side is "".
func (c Change) Text() (before, after string, ok bool) {
	if c.ContentOmitted || !utf8.Valid(c.BeforeContent) || !utf8.Valid(c.AfterContent) {
		return "", "", false
	}
	return string(c.BeforeContent), string(c.AfterContent), true
}

// DriftKind says how a managed file differs from what bootsync last wrote.
type DriftKind string

// Kinds of drift.
const (
	DriftModified DriftKind = "modified" // content edited outside bootsync
	// DriftReverted: the content is an earlier version bootsync wrote, as
	// after `bootc rollback` (the old deployment boots with its old /etc).
	DriftReverted DriftKind = "reverted"
	DriftMissing  DriftKind = "missing"  // the file was removed
	DriftMetadata DriftKind = "metadata" // same content, different mode or owner
	DriftReplaced DriftKind = "replaced" // no longer a regular file
)

// Drift is a managed file that no longer is what bootsync last wrote.
type Drift struct {
	Path string    `json:"path"`
	Kind DriftKind `json:"kind"`
	Want FileState `json:"want"` // what bootsync last wrote
	Got  FileState `json:"got"`  // what is on disk
	// WantLabel and GotLabel are the SELinux labels of a DriftLabel.
	WantLabel string `json:"wantLabel,omitempty"`
	GotLabel  string `json:"gotLabel,omitempty"`
	// Corrected is true when the plan rewrites the file. False means it is
	// left alone: the path left the spec, and bootsync never removes or
	// overwrites a local edit of a file it no longer manages.
	Corrected bool `json:"corrected"`
}

// Problem is a path the plan cannot handle (a symlinked parent, a directory
// at the target, an unknown owner, an invalid entry). Other paths are still
// applied; Apply returns the problems as its error.
type Problem struct {
	Path string
	Err  error
}

func (p Problem) Error() string { return p.Err.Error() }

// MarshalJSON writes the problem as {"path": …, "error": …}.
func (p Problem) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	}{p.Path, p.Err.Error()})
}

// Actions are what applied changes need to take effect.
type Actions struct {
	// DaemonReload: a unit file or drop-in under /etc/systemd/system changed.
	DaemonReload bool     `json:"daemonReload,omitempty"`
	Restart      []string `json:"restart,omitempty"` // units, in order, deduplicated
	Reload       []string `json:"reload,omitempty"`  // units, not also restarted
	// RebootRequired: a changed file's onChange asks for a reboot and the
	// host has not rebooted since.
	RebootRequired bool `json:"rebootRequired,omitempty"`
}

// Empty reports whether there is nothing to do.
func (a Actions) Empty() bool {
	return !a.DaemonReload && !a.RebootRequired && len(a.Restart) == 0 && len(a.Reload) == 0
}

// systemctlWork reports whether RunOnChange has anything to run.
func (a Actions) systemctlWork() bool {
	return a.DaemonReload || len(a.Restart) > 0 || len(a.Reload) > 0
}

// Result is what an Apply did.
type Result struct {
	Applied []Change `json:"applied"`
	// Actions are everything owed after this Apply: from its changes, and
	// from earlier passes that were interrupted before RunOnChange ran them.
	Actions Actions `json:"actions"`
}

// ManagedFile is one path in the manifest, for `bootsync status`.
type ManagedFile struct {
	Path   string            `json:"path"`
	SHA256 string            `json:"sha256"`
	Mode   hostspec.FileMode `json:"mode"`
	Owner  string            `json:"owner"`
	Group  string            `json:"group"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
	Source string            `json:"source,omitempty"`
	// ReplacedOriginal: a file existed before bootsync first wrote the path;
	// it is put back when the path leaves the spec.
	ReplacedOriginal bool `json:"replacedOriginal,omitempty"`
	// Interrupted: a write was in progress when a pass was interrupted; the
	// next Apply settles it.
	Interrupted bool `json:"interrupted,omitempty"`
}

// checkTarget validates a spec path and returns it relative to the root.
// hostspec validates too; this is the writer's own line of defence, since
// it runs as root.
func checkTarget(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return "", errors.New("path contains a NUL byte")
	case !strings.HasPrefix(p, "/etc/"):
		return "", errors.New("not a path under /etc")
	case path.Clean(p) != p:
		return "", errors.New("not a normalized path (no \"..\", \".\", \"//\" or trailing \"/\")")
	}
	for _, c := range strings.Split(p[1:], "/") {
		if strings.HasPrefix(c, tempPrefix) {
			return "", fmt.Errorf("%q is reserved for bootsync's temporary files", tempPrefix)
		}
	}
	return p[1:], nil
}

func fileMode(m uint32) hostspec.FileMode { return hostspec.FileMode(m & 0o7777) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
