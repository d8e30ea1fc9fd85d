package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/google/renameio/v2"

	"github.com/bootsync/bootsync/apply/bootc"
)

// State is the simulated host: its deployments and what the simulator
// needs to model /etc across reboots. It is stored as JSON in
// BOOTCSIM_STATE.
type State struct {
	// Version is the simulated bootc version (BOOTCSIM_VERSION overrides it).
	Version string `json:"version,omitempty"`
	// Arch is the simulated machine's OCI architecture (BOOTCSIM_ARCH
	// overrides it).
	Arch string `json:"arch,omitempty"`
	// SoftRebootTarget says the host has soft-reboot.target; without it no
	// deployment is soft-reboot capable.
	SoftRebootTarget bool `json:"softRebootTarget"`

	Booted   *Deployment `json:"booted"`
	Staged   *Deployment `json:"staged"`
	Rollback *Deployment `json:"rollback"`
	// RollbackQueued: the rollback deployment boots next.
	RollbackQueued bool `json:"rollbackQueued"`
	// SoftRebootPrepared: a --soft-reboot prepared /run/nextroot, so the
	// next reboot is a soft one.
	SoftRebootPrepared bool `json:"softRebootPrepared"`

	// Bad lists digests that `sim health` reports as unhealthy once booted.
	Bad []string `json:"bad,omitempty"`
	// Boots records every simulated reboot, oldest first.
	Boots []Boot `json:"boots,omitempty"`
}

// Boot is one simulated reboot.
type Boot struct {
	Time time.Time `json:"time"`
	// Outcome is "staged" (finalized the staged deployment), "rollback"
	// (booted the queued rollback), "discarded-download-only" (a locked
	// staged deployment was dropped) or "unchanged".
	Outcome string `json:"outcome"`
	Digest  string `json:"digest"` // booted afterwards
	Soft    bool   `json:"soft"`
}

// Deployment is one ostree deployment of a container image.
type Deployment struct {
	Image        bootc.ImageReference `json:"image"`
	Digest       string               `json:"digest"`
	Architecture string               `json:"architecture"`
	Version      *string              `json:"version"`
	Timestamp    *string              `json:"timestamp"`
	Checksum     string               `json:"checksum"`
	DeploySerial uint32               `json:"deploySerial"`
	DownloadOnly bool                 `json:"downloadOnly,omitempty"`
	// Kernel is the image's ostree.linux label; soft reboots need the
	// booted and target kernels to match.
	Kernel       string             `json:"kernel,omitempty"`
	CachedUpdate *bootc.ImageStatus `json:"cachedUpdate,omitempty"`
	// ImageEtc is what the image ships under usr/etc (its default /etc),
	// used by the 3-way merge when this deployment is finalized.
	ImageEtc map[string]EtcFile `json:"imageEtc,omitempty"`
	// EtcSnapshot is /etc as it was when this deployment was last booted;
	// booting it again by rollback restores it.
	EtcSnapshot map[string]EtcFile `json:"etcSnapshot,omitempty"`
}

// EtcFile is a regular file or a symlink under /etc. Like ostree, the
// merge counts a change of owner or group as a local modification.
type EtcFile struct {
	Mode fs.FileMode `json:"mode"` // permission bits
	UID  int         `json:"uid"`
	GID  int         `json:"gid"`
	Data []byte      `json:"data,omitempty"`
	Link string      `json:"link,omitempty"` // symlink target; Data is empty
}

func (f EtcFile) equal(o EtcFile) bool {
	return f.Mode == o.Mode && f.UID == o.UID && f.GID == o.GID && f.Link == o.Link && bytes.Equal(f.Data, o.Data)
}

// imageOwner maps an image file's owner to the simulated host's: root in
// the image is the user running the simulator (root in CI, where the
// host root is writable by nobody else).
func imageOwner(uid, gid int) (int, int) {
	if uid == 0 {
		uid = os.Getuid()
	}
	if gid == 0 {
		gid = os.Getgid()
	}
	return uid, gid
}

// ostreeChecksum stands in for the ostree merge commit of an image.
func ostreeChecksum(digest string) string {
	sum := sha256.Sum256([]byte("bootcsim ostree commit\x00" + digest))
	return hex.EncodeToString(sum[:])
}

// specImage is what bootc reports as spec.image: the staged deployment's
// image, else the booted one's.
func (s *State) specImage() *bootc.ImageReference {
	switch {
	case s.Staged != nil:
		return &s.Staged.Image
	case s.Booted != nil:
		return &s.Booted.Image
	}
	return nil
}

// newDeployment builds a deployment with the next free serial for its
// checksum, as ostree numbers deployments of the same commit.
func (s *State) newDeployment(ref bootc.ImageReference, img *pulledImage) *Deployment {
	d := &Deployment{
		Image:        ref,
		Digest:       img.Digest,
		Architecture: img.Architecture,
		Version:      img.Version,
		Timestamp:    img.Timestamp,
		Kernel:       img.Kernel,
		ImageEtc:     img.Etc,
		Checksum:     ostreeChecksum(img.Digest),
	}
	for _, other := range []*Deployment{s.Booted, s.Rollback} {
		if other != nil && other.Checksum == d.Checksum && other.DeploySerial >= d.DeploySerial {
			d.DeploySerial = other.DeploySerial + 1
		}
	}
	return d
}

// softRebootCapable mirrors bootc's test in spirit: the host has
// soft-reboot.target and the target boots the same kernel as the booted
// deployment.
func (s *State) softRebootCapable(target *Deployment) bool {
	return s.SoftRebootTarget && target != nil && s.Booted != nil && target.Kernel == s.Booted.Kernel
}

func (s *State) isBad(digest string) bool { return slices.Contains(s.Bad, digest) }

// loadState reads the state file; a missing file is a host that bootc did
// not deploy (an empty State).
func loadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read simulator state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read simulator state %s: %w", path, err)
	}
	return &s, nil
}

// saveState replaces the state file atomically.
func saveState(path string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode simulator state: %w", err)
	}
	if err := renameio.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write simulator state: %w", err)
	}
	return nil
}

// sysrootLock is the simulator's stand-in for ostree's sysroot lock: an
// flock on <state>.lock, so concurrent writers serialize like bootc's.
type sysrootLock struct{ f *os.File }

// lockSysroot takes the lock, printing bootc's notice to stderr when it
// has to wait.
func lockSysroot(statePath string, waiting func()) (*sysrootLock, error) {
	if err := os.MkdirAll(filepath.Dir(statePath), 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(statePath+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open sysroot lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock sysroot: %w", err)
		}
		waiting()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock sysroot: %w", err)
		}
	}
	return &sysrootLock{f: f}, nil
}

func (l *sysrootLock) unlock() { l.f.Close() }
