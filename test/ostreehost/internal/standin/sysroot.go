package standin

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Python is the interpreter with the GObject bindings (Debian's, not a
// pyenv build that may be first on PATH).
const Python = "/usr/bin/python3"

//go:embed sysroot.py
var sysrootPy string

// Sysroot is an ostree sysroot: "/" for the booted system (the stand-in
// runs inside the booted deployment), or a directory (install, before
// anything is booted).
type Sysroot struct {
	Path string
}

// Repo is the sysroot's repository.
func (s Sysroot) Repo() string { return filepath.Join(s.Path, "ostree/repo") }

// booted reports whether this is the booted system's sysroot.
func (s Sysroot) booted() bool { return s.Path == "/" }

// run runs a command and returns its stdout; the error carries stderr.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// ostree runs the ostree CLI.
func (s Sysroot) ostree(ctx context.Context, args ...string) ([]byte, error) {
	return run(ctx, "ostree", args...)
}

// admin runs `ostree admin VERB` on this sysroot.
func (s Sysroot) admin(ctx context.Context, verb string, args ...string) ([]byte, error) {
	full := []string{"admin", verb}
	if !s.booted() {
		full = append(full, "--sysroot="+s.Path)
	}
	return s.ostree(ctx, append(full, args...)...)
}

// python runs the libostree helper (sysroot.py).
func (s Sysroot) python(ctx context.Context, args ...string) ([]byte, error) {
	out, err := run(ctx, Python, append([]string{"-c", sysrootPy, s.Path}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("libostree: %w", err)
	}
	return out, nil
}

// Deployment is one ostree deployment as libostree reports it.
type Deployment struct {
	ID        string            `json:"id"` // stateroot/checksum.serial
	Index     int               `json:"index"`
	Stateroot string            `json:"stateroot"`
	Checksum  string            `json:"checksum"`
	Serial    uint32            `json:"serial"`
	Staged    bool              `json:"staged"`
	Pinned    bool              `json:"pinned"`
	Booted    bool              `json:"booted"`
	Origin    *string           `json:"origin"`   // container-image-reference of the origin file
	Metadata  map[string]string `json:"metadata"` // the commit's string metadata
}

// StoredImage is an image imported into the repository: its ref
// (ostree/container/image/…), commit and manifest digest.
type StoredImage struct {
	Ref      string  `json:"ref"`
	Checksum string  `json:"checksum"`
	Digest   *string `json:"digest"`
}

// State is the sysroot as libostree sees it.
type State struct {
	Booted      *int          `json:"booted"` // index of the booted deployment
	Deployments []Deployment  `json:"deployments"`
	Images      []StoredImage `json:"images"`
	// FinalizationLocked: /run/ostree/staged-deployment-locked exists
	// (ostree 2022.7 keeps the finalization lock there).
	FinalizationLocked bool `json:"-"`
}

// LoadState reads the deployments and imported images.
func (s Sysroot) LoadState(ctx context.Context) (*State, error) {
	out, err := s.python(ctx, "state")
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("libostree state: %w", err)
	}
	if s.booted() {
		_, err := os.Stat(lockedPath)
		st.FinalizationLocked = err == nil
	}
	return &st, nil
}

// WriteDeployments writes the deployment list in the given order
// (libostree's write_deployments); a staged deployment left out is
// discarded.
func (s Sysroot) WriteDeployments(ctx context.Context, order []Deployment) error {
	ids := make([]string, len(order))
	for i, d := range order {
		ids[i] = d.ID
	}
	_, err := s.python(ctx, append([]string{"write"}, ids...)...)
	return err
}

// Runtime files of a booted ostree system.
const (
	stagedPath     = "/run/ostree/staged-deployment"
	lockedPath     = "/run/ostree/staged-deployment-locked"
	rebootRequired = "/run/reboot-required"
)

// Booted is the booted deployment, nil when none.
func (st *State) BootedDeployment() *Deployment {
	for i := range st.Deployments {
		if st.Deployments[i].Booted {
			return &st.Deployments[i]
		}
	}
	return nil
}

// Roles splits the deployments of the booted stateroot as bootc does:
// the staged one, the rollback (the first that is neither booted nor
// staged) and the others (then other stateroots).
func (st *State) Roles() (booted, staged, rollback *Deployment, others []Deployment) {
	booted = st.BootedDeployment()
	if booted == nil {
		return nil, nil, nil, nil
	}
	var foreign []Deployment
	for i := range st.Deployments {
		d := &st.Deployments[i]
		switch {
		case d.Stateroot != booted.Stateroot:
			foreign = append(foreign, *d)
		case d.Booted:
		case d.Staged && staged == nil:
			staged = d
		case rollback == nil:
			rollback = d
		default:
			others = append(others, *d)
		}
	}
	return booted, staged, rollback, append(others, foreign...)
}

// imageByDigest finds an imported image by manifest digest.
func (st *State) imageByDigest(digest string) *StoredImage {
	for i := range st.Images {
		if d := st.Images[i].Digest; d != nil && *d == digest {
			return &st.Images[i]
		}
	}
	return nil
}

var errNotBooted = errors.New("This command requires a booted host system (not booted into an ostree deployment)")
