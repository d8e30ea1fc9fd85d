package etcoverlay

import (
	"errors"
	"fmt"

	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

// LabelSource says which SELinux label the loaded policy assigns to a
// regular file at a path: what restorecon would set. FileContexts is the
// implementation for a host; tests inject their own.
type LabelSource interface {
	// Label returns the context for a regular file at path (a host path,
	// "/etc/ssh/sshd_config"); "" when the policy assigns none
	// (<<none>>), in which case the writer leaves labels alone.
	Label(path string) (string, error)
}

// WithLabels turns SELinux labelling on (pass it only when SELinux is
// enabled): every file the writer creates or replaces gets src's label for
// its final path, set on the temporary file before the atomic rename, so
// the file is never visible with another label (restorecon afterwards
// would race with the services reading it). A managed file whose label
// differs from the policy's is reported as drift (DriftLabel) and
// rewritten with the right one.
func WithLabels(src LabelSource) Option {
	return func(o *options) error {
		if src == nil {
			return errors.New("WithLabels: nil label source")
		}
		o.labels = src
		return nil
	}
}

// DriftLabel: same content, mode and owner, but the file's SELinux label
// is not the one the policy assigns to its path.
const DriftLabel DriftKind = "label"

// fdPath names an open descriptor for the label calls, which take paths.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// setLabelFD labels the open file fd (the temporary file, before rename).
func setLabelFD(fd int, label string) error {
	if label == "" {
		return nil
	}
	if err := selinux.SetFileLabel(fdPath(fd), label); err != nil {
		return fmt.Errorf("set SELinux label %s: %w", label, err)
	}
	return nil
}

// labelAt reads the SELinux label of name in dirfd without following a
// symbolic link; "" when the file has none.
func labelAt(dirfd int, name string) (string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	label, err := selinux.FileLabel(fdPath(fd))
	if errors.Is(err, unix.ENODATA) {
		return "", nil
	}
	return label, err
}

// checkLabel compares the label of the regular file name in dirfd with
// want; ok when labelling is off (want == "") or they are equal.
func checkLabel(dirfd int, name, want string) (got string, ok bool, err error) {
	if want == "" {
		return "", true, nil
	}
	got, err = labelAt(dirfd, name)
	if err != nil {
		return "", false, fmt.Errorf("read SELinux label: %w", err)
	}
	return got, got == want, nil
}

// relabel plans a file whose content, mode and owner are as desired but
// whose SELinux label is not the policy's: drift when bootsync wrote it,
// and a rewrite (same content, right label, atomically) either way.
func (pl *planner) relabel(hp, rel string, d *desiredFile, obs observed, final *entry, eff *fileState, got string, adopt bool) {
	if eff != nil {
		pl.plan.Drift = append(pl.plan.Drift, Drift{Path: hp, Kind: DriftLabel, Want: stateOf(eff, 0), Got: obs.state(),
			WantLabel: d.label, GotLabel: got, Corrected: true})
	}
	reason := fmt.Sprintf("SELinux label %s → %s", orNone(got), d.label)
	pl.change(Change{Kind: ChangeUpdate, Reason: reason, label: d.label}, hp, rel, d.f, obs, final, adopt)
}

func orNone(label string) string {
	if label == "" {
		return "(none)"
	}
	return label
}
