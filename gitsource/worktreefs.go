package gitsource

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Base is the view's root relative to the checkout's top directory ("."
// when the view is the whole checkout).
func (w *WorkTreeFS) Base() string { return w.base }

// Open opens name, following symbolic links inside the view.
func (w *WorkTreeFS) Open(name string) (fs.File, error) {
	e, err := w.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	if e.info.IsDir() {
		return &workDir{w: w, name: name, e: e}, nil
	}
	return w.openFile("open", name, e)
}

// openFile opens a resolved regular file without following a link that
// might have replaced it since.
func (w *WorkTreeFS) openFile(op, name string, e entry) (*os.File, error) {
	if !e.info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("not a regular file")}
	}
	f, err := os.OpenFile(w.disk(e.full), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: pathCause(err)}
	}
	return f, nil
}

// ReadFile reads a whole file, following symbolic links inside the view.
func (w *WorkTreeFS) ReadFile(name string) ([]byte, error) {
	e, err := w.resolve("read", name, true)
	if err != nil {
		return nil, err
	}
	if e.info.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	f, err := w.openFile("read", name, e)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: pathCause(err)}
	}
	return data, nil
}

// Stat describes name, following symbolic links inside the view.
func (w *WorkTreeFS) Stat(name string) (fs.FileInfo, error) {
	e, err := w.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return e.info, nil
}

// Lstat describes name without following a final symbolic link.
func (w *WorkTreeFS) Lstat(name string) (fs.FileInfo, error) {
	e, err := w.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return e.info, nil
}

// ReadLink returns the target of the symbolic link name.
func (w *WorkTreeFS) ReadLink(name string) (string, error) {
	e, err := w.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e.info.Mode()&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := os.Readlink(w.disk(e.full))
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: pathCause(err)}
	}
	return target, nil
}

// ReadDir lists what the view shows of a directory, in name order. A
// submodule, nested repository or mount point inside is listed as an
// irregular entry whose Info fails with ErrSubmodule or
// ErrOtherFileSystem, so that walkers report it instead of skipping it.
func (w *WorkTreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := w.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !e.info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	des, err := os.ReadDir(w.disk(e.full))
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: pathCause(err)}
	}
	out := make([]fs.DirEntry, 0, len(des))
	for _, de := range des {
		full := path.Join(e.full, de.Name())
		fi, err := w.lstatShown(full)
		switch {
		case err == nil:
			out = append(out, fs.FileInfoToDirEntry(fi))
		case errors.Is(err, ErrSubmodule), errors.Is(err, ErrOtherFileSystem):
			out = append(out, refusedEntry{name: de.Name(), err: &fs.PathError{Op: "lstat", Path: path.Join(name, de.Name()), Err: err}})
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, &fs.PathError{Op: "readdir", Path: path.Join(name, de.Name()), Err: err}
		}
	}
	return out, nil // os.ReadDir sorts by name
}

// refusedEntry is a directory entry the view will not open.
type refusedEntry struct {
	name string
	err  error
}

func (e refusedEntry) Name() string               { return e.name }
func (e refusedEntry) IsDir() bool                { return false }
func (e refusedEntry) Type() fs.FileMode          { return fs.ModeIrregular }
func (e refusedEntry) Info() (fs.FileInfo, error) { return nil, e.err }

type workDir struct {
	w       *WorkTreeFS
	name    string
	e       entry
	pending []fs.DirEntry
	listed  bool
}

func (d *workDir) Stat() (fs.FileInfo, error) { return d.e.info, nil }
func (d *workDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *workDir) Close() error { return nil }

func (d *workDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.listed {
		es, err := d.w.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.pending, d.listed = es, true
	}
	if n <= 0 {
		out := d.pending
		d.pending = nil
		return out, nil
	}
	if len(d.pending) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(d.pending))
	out := d.pending[:k]
	d.pending = d.pending[k:]
	return out, nil
}

// mountID identifies the mount a path is on: the device, and the mount ID
// where the kernel reports one (a bind mount of the same file system has
// the same device but its own mount ID).
type mountID struct {
	dev, mnt uint64
}

func mountOf(p string) (mountID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return mountID{}, nil // no statx: nothing to compare with
		}
		return mountID{}, fmt.Errorf("stat %s: %w", p, err)
	}
	id := mountID{dev: uint64(stx.Dev_major)<<32 | uint64(stx.Dev_minor)}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		id.mnt = stx.Mnt_id
	}
	return id, nil
}

// String describes the view for messages.
func (w *WorkTreeFS) String() string {
	return fmt.Sprintf("working tree %s", strings.TrimSuffix(w.disk(w.base), "/."))
}

// pathCause is the cause of an *fs.PathError (its path is the disk path,
// which callers replace by the view's), or err itself.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
