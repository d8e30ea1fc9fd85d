package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/google/renameio/v2"

	"github.com/bootsync/bootsync/hostspec"
)

// journalVersion is bumped when the journal format changes incompatibly.
// Additive changes (a new field an older agent may ignore) keep the
// version: an older agent reads such a journal and keeps the fields it does
// not know when it rewrites it (keepUnknown). A journal with a higher
// version is never rewritten by this agent (*NewerJournalError).
const journalVersion = 1

// Journal is the agent's durable memory, in <stateDir>/journal.json. Every
// intent is written before the agent acts on it, so a crash or power loss at
// any point resumes correctly and never reboots twice for the same change.
type Journal struct {
	Version int `json:"version"`
	// LastApplied is the last commit whose spec the host was converged to;
	// a new commit must descend from it (gitsource's fast-forward check).
	LastApplied string `json:"lastApplied,omitempty"`
	// Intent is the step in flight; it stays set when the agent died
	// mid-step, which status reports.
	Intent *Intent `json:"intent,omitempty"`
	// Pending is written right before a reboot into a new image. After the
	// boot ID changes, the agent verifies that image or quarantines it.
	Pending *PendingReboot `json:"pending,omitempty"`
	// FleetLockHeld says this host holds a FleetLock slot.
	FleetLockHeld bool `json:"lockHeld,omitempty"`
	// RebootRequested is set by `bootsync reboot` for update.reboot: manual.
	RebootRequested bool `json:"rebootRequested,omitempty"`
	// UsersDeferredSince is when a reboot was first deferred for logged-in
	// users (update.deferRebootWhileUsers).
	UsersDeferredSince time.Time `json:"usersDeferredSince,omitzero"`
	// Quarantine holds digests that failed verification, by digest.
	Quarantine map[string]QuarantineEntry `json:"quarantine,omitempty"`
	// Committed is the last digest that passed verification (or was
	// booted when the agent first ran): a safe rollback target.
	Committed string `json:"committed,omitempty"`
	// Restaged is the digest of an update that was lost at a reboot
	// (never finalized) and staged once more; a second loss quarantines it.
	Restaged string `json:"restaged,omitempty"`
	// FailedBoot is the boot ID of a boot whose verification failed:
	// `bootsync check-boot` reports that boot as bad to greenboot.
	FailedBoot string `json:"failedBoot,omitempty"`
	// BootedFrom is the commit that asked for the booted image.
	BootedFrom *BootedFrom `json:"bootedFrom,omitempty"`

	// loaded is the file this journal was read from, so that fields a
	// newer agent added survive this agent's rewrite.
	loaded []byte
}

// Intent is a step the agent started.
type Intent struct {
	Action  Action    `json:"action"`
	Digest  string    `json:"digest,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Started time.Time `json:"started"`
}

// PendingKind says what a pending reboot is for.
type PendingKind string

// Kinds of pending reboots.
const (
	pendingUpdate       PendingKind = "update"        // into a newly staged image
	pendingRollback     PendingKind = "rollback"      // into the rollback deployment (git revert)
	pendingAutoRollback PendingKind = "auto-rollback" // back after a failed verification
	pendingEtc          PendingKind = "etc"           // same image; an /etc change needs a reboot
)

// PendingReboot is a reboot the agent asked for. It keeps what verifying
// the new boot needs, so verification works even when the fleet repository
// is unreachable afterwards.
type PendingReboot struct {
	Kind     PendingKind `json:"kind"`
	Digests  []string    `json:"digests"` // what bootc should report after the boot
	ImageRef string      `json:"imageRef"`
	Commit   string      `json:"commit"`
	BootID   string      `json:"bootID"` // the boot ID before the reboot
	Soft     bool        `json:"soft,omitempty"`
	At       time.Time   `json:"at"`
	// From is the digest booted before the reboot, to roll back to.
	From string `json:"from,omitempty"`
	// SeenAt is when the agent first saw the new boot: the grace period
	// of the health checks starts there.
	SeenAt time.Time              `json:"seenAt,omitzero"`
	Health []hostspec.HealthCheck `json:"health,omitempty"`
	Update hostspec.UpdatePolicy  `json:"update"`
}

// QuarantineEntry says why an image is never tried again for its desired
// state.
type QuarantineEntry struct {
	Digest string    `json:"digest"`
	Commit string    `json:"commit,omitempty"`
	Reason string    `json:"reason"`
	Check  string    `json:"check,omitempty"`  // the failed health check
	Output string    `json:"output,omitempty"` // its output, truncated
	At     time.Time `json:"at"`
}

func (j *Journal) quarantined(digests []string) string {
	for _, d := range digests {
		if _, ok := j.Quarantine[d]; ok {
			return d
		}
	}
	return ""
}

// withQuarantine returns a copy of j with digest quarantined, for planning.
func (j *Journal) withQuarantine(digest string) *Journal {
	c := *j
	c.Quarantine = maps.Clone(j.Quarantine)
	if c.Quarantine == nil {
		c.Quarantine = map[string]QuarantineEntry{}
	}
	c.Quarantine[digest] = QuarantineEntry{Digest: digest, Reason: "did not boot"}
	c.Pending = nil
	return &c
}

// withoutPending returns a copy of j with no pending reboot, for planning.
func (j *Journal) withoutPending() *Journal {
	c := *j
	c.Pending = nil
	return &c
}

// JournalStore reads and writes the journal atomically.
type JournalStore struct {
	path string
}

// NewJournalStore keeps the journal in stateDir.
func NewJournalStore(stateDir string) *JournalStore {
	return &JournalStore{path: filepath.Join(stateDir, "journal.json")}
}

// Load reads the journal; a missing journal is an empty one.
func (s *JournalStore) Load() (*Journal, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Journal{Version: journalVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if err := checkJournalVersion(s.path, data); err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", s.path, err)
	}
	j.loaded = data
	return &j, nil
}

// Save writes the journal atomically and durably (temp file, fsync,
// rename, directory fsync).
func (s *JournalStore) Save(j *Journal) error {
	j.Version = journalVersion
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	if data, err = keepUnknown(j.loaded, data, reflect.TypeFor[Journal]()); err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := renameio.WriteFile(s.path, append(data, '\n'), 0o600, renameio.WithTempDir(filepath.Dir(s.path))); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	j.loaded = data
	return syncDir(filepath.Dir(s.path))
}

// syncDir makes a rename durable: renameio fsyncs the file, not the
// directory entry.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
