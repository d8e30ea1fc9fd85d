package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/renameio/v2"
)

// Status is what the last pass saw and did, written to
// <stateDir>/status.json for `bootsync status`, monitoring and humans.
type Status struct {
	Host     string         `json:"host"`
	Updated  time.Time      `json:"updated"`
	Desired  *DesiredStatus `json:"desired,omitempty"`
	Booted   *Deployment    `json:"booted,omitempty"`
	Staged   *Deployment    `json:"staged,omitempty"`
	Rollback *Deployment    `json:"rollback,omitempty"`
	// BootedCommit is the commit whose spec first asked for the booted
	// image ("" when the agent did not see it asked for).
	BootedCommit string `json:"bootedCommit,omitempty"`

	RollbackQueued bool `json:"rollbackQueued"`
	RebootPending  bool `json:"rebootPending"`
	FleetLockHeld  bool `json:"lockHeld"`

	LastPass    *PassStatus  `json:"lastPass,omitempty"`
	LastSuccess time.Time    `json:"lastSuccess,omitzero"`
	LastError   *ErrorStatus `json:"lastError,omitempty"`

	Managed    []ManagedFile     `json:"managed"`
	Drift      []DriftStatus     `json:"drift"`
	Quarantine []QuarantineEntry `json:"quarantine"`
	// Health is the last verification after an update.
	Health *HealthStatus `json:"health,omitempty"`
	// Warnings are problems that did not stop the pass (e.g. a managed file
	// the image also ships).
	Warnings []string `json:"warnings,omitempty"`
	// OtherUpdaters are update services enabled on the host besides the
	// agent (bootc-fetch-apply-updates.timer, zincati.service, ...).
	OtherUpdaters []string `json:"otherUpdaters,omitempty"`
}

// DesiredStatus is the desired state of the last pass that got that far.
type DesiredStatus struct {
	Commit string `json:"commit"`
	Ref    string `json:"ref"`    // image as written in the fleet repo
	Digest string `json:"digest"` // pinned digest
	// PlatformDigest is what bootc reports when Digest is an image index.
	PlatformDigest string `json:"platformDigest,omitempty"`
	Target         string `json:"target"` // what bootc is switched to (repo@digest)
	// ResolvedFrom and SignatureFrom name the repository that answered:
	// a registries.conf mirror or the primary (empty: no request needed).
	ResolvedFrom  string `json:"resolvedFrom,omitempty"`
	SignatureFrom string `json:"signatureFrom,omitempty"`
	// HostPolicy is the host containers policy's verdict for Target.
	HostPolicy string `json:"hostPolicy,omitempty"`
}

// PassStatus describes one pass.
type PassStatus struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Result   string    `json:"result"` // "ok" | "error"
	State    State     `json:"state"`  // plan state (converged, waiting, ...)
	Reason   string    `json:"reason"`
	Steps    []Step    `json:"steps"`
	DryRun   bool      `json:"dryRun,omitempty"`
}

// ErrorStatus is the last error with its machine-readable reason.
type ErrorStatus struct {
	Reason  Reason    `json:"reason"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// ManagedFile is a file under /etc that bootsync manages.
type ManagedFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// DriftStatus is a managed file changed behind bootsync's back.
type DriftStatus struct {
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// HealthStatus is the verdict of a verification.
type HealthStatus struct {
	Digest string        `json:"digest"`
	Time   time.Time     `json:"time"`
	Passed bool          `json:"passed"`
	Checks []CheckStatus `json:"checks"`
}

// CheckStatus is one health check's result.
type CheckStatus struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	OK       bool   `json:"ok"`
	Attempts int    `json:"attempts"`
	Output   string `json:"output,omitempty"`
}

// StatusStore reads and writes status.json atomically.
type StatusStore struct{ path string }

// NewStatusStore keeps status.json in stateDir.
func NewStatusStore(stateDir string) *StatusStore {
	return &StatusStore{path: filepath.Join(stateDir, "status.json")}
}

// Path is where status.json lives.
func (s *StatusStore) Path() string { return s.path }

// Load reads the last status; a missing file gives nil and no error.
func (s *StatusStore) Load() (*Status, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read status %s: %w", s.path, err)
	}
	return &st, nil
}

// Save writes status.json atomically.
func (s *StatusStore) Save(st *Status) error {
	sort.Slice(st.Quarantine, func(i, j int) bool { return st.Quarantine[i].Digest < st.Quarantine[j].Digest })
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if err := renameio.WriteFile(s.path, append(data, '\n'), 0o644, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
