package ocisource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/internal/boundedread"
)

// maxSymlinkHops bounds link resolution, as the kernel's ELOOP does.
const maxSymlinkHops = 40

// FS is a fleet artifact's files: a read-only file system over the
// artifact's tar, kept on disk, with an index checked when it was opened.
// It behaves like gitsource.TreeFS: Open, Stat and ReadFile follow
// symbolic links inside the artifact, a link that leaves it fails with
// gitsource.ErrSymlinkEscapes, and Lstat and ReadLink show links as they
// are. Every entry reports the commit time as its modification time. It
// is safe for concurrent use.
type FS struct {
	file    io.ReaderAt
	ix      *index
	root    *entry // the directory this FS shows (Subtree)
	modTime time.Time
}

var _ gitsource.FS = (*FS)(nil)

// OpenTar opens the uncompressed tar at path as an FS after checking every
// entry (see InvalidContentError). The file is read lazily: it must stay
// in place (the FS keeps it open).
func OpenTar(path string, modTime time.Time) (*FS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ix, err := indexTar(f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &FS{file: f, ix: ix, root: ix.root, modTime: modTime}, nil
}

// full is name (relative to the FS's root) inside the whole artifact.
func (f *FS) full(name string) string {
	if f.root.name == "." {
		return name
	}
	if name == "." {
		return f.root.name
	}
	return f.root.name + "/" + name
}

// rel is the inverse of full.
func (f *FS) rel(full string) string {
	if f.root.name == "." {
		return full
	}
	if full == f.root.name {
		return "."
	}
	return strings.TrimPrefix(full, f.root.name+"/")
}

func (f *FS) resolve(op, name string, followLast bool) (*entry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e, err := f.walk(name, followLast, 0)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

// walk resolves name (relative to the root) one element at a time, so a
// link is resolved against the directory that holds it.
func (f *FS) walk(name string, followLast bool, hops int) (*entry, error) {
	if name == "." {
		return f.root, nil
	}
	cur := "."
	parts := strings.Split(name, "/")
	for i, part := range parts {
		next := path.Join(cur, part)
		e, ok := f.ix.entries[f.full(next)]
		if !ok {
			return nil, fs.ErrNotExist
		}
		last := i == len(parts)-1
		if e.mode&fs.ModeSymlink != 0 && (!last || followLast) {
			if hops >= maxSymlinkHops {
				return nil, errors.New("too many levels of symbolic links")
			}
			joined := path.Join(cur, e.target)
			if path.IsAbs(e.target) || !fs.ValidPath(joined) {
				return nil, fmt.Errorf("%s -> %s: %w", next, e.target, gitsource.ErrSymlinkEscapes)
			}
			rest := path.Join(append([]string{joined}, parts[i+1:]...)...)
			return f.walk(rest, followLast, hops+1)
		}
		if !last && !e.mode.IsDir() {
			return nil, fs.ErrNotExist // a file used as a directory
		}
		cur = next
		if last {
			return e, nil
		}
	}
	return nil, fs.ErrNotExist
}

func (f *FS) info(e *entry) fs.FileInfo {
	name := path.Base(f.rel(e.name))
	return fileInfo{name: name, size: e.size, mode: e.mode, modTime: f.modTime}
}

func (f *FS) read(e *entry) ([]byte, error) {
	b := make([]byte, e.size)
	if _, err := f.file.ReadAt(b, e.offset); err != nil {
		return nil, fmt.Errorf("read %s from the artifact: %w", e.name, err)
	}
	return b, nil
}

// Open opens name, following symbolic links inside the artifact.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	if e.mode.IsDir() {
		return &dirFile{fs: f, e: e}, nil
	}
	b, err := f.read(e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &regFile{info: f.info(e), r: bytes.NewReader(b)}, nil
}

// ReadFile reads a whole file, following symbolic links inside the artifact.
func (f *FS) ReadFile(name string) ([]byte, error) {
	return f.ReadFileLimit(name, -1)
}

// ReadFileLimit is ReadFile for a file of at most limit bytes (any size when
// limit is negative): a larger one fails before it is read.
func (f *FS) ReadFileLimit(name string, limit int64) ([]byte, error) {
	e, err := f.resolve("read", name, true)
	if err != nil {
		return nil, err
	}
	if e.mode.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	if limit >= 0 && e.size > limit {
		return nil, &fs.PathError{Op: "read", Path: name, Err: &boundedread.TooLargeError{Size: e.size, Limit: limit}}
	}
	b, err := f.read(e)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// Stat describes name, following symbolic links inside the artifact.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return f.info(e), nil
}

// Lstat describes name without following a final symbolic link.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	e, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return f.info(e), nil
}

// ReadLink returns the target of the symbolic link name.
func (f *FS) ReadLink(name string) (string, error) {
	e, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.target, nil
}

// ReadDir lists a directory in name order without following links in it.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !e.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return f.list(e), nil
}

func (f *FS) list(dir *entry) []fs.DirEntry {
	out := make([]fs.DirEntry, len(dir.children))
	for i, c := range dir.children {
		out[i] = fs.FileInfoToDirEntry(f.info(c))
	}
	return out
}

// Subtree returns the directory dir (following links inside the artifact
// to find it) as an FS of its own, in which links that leave dir fail with
// gitsource.ErrSymlinkEscapes.
func (f *FS) Subtree(dir string) (gitsource.FS, error) {
	e, err := f.resolve("open", dir, true)
	if err != nil {
		return nil, err
	}
	if !e.mode.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.New("not a directory")}
	}
	return &FS{file: f.file, ix: f.ix, root: e, modTime: f.modTime}, nil
}

type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.modTime }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

type regFile struct {
	info fs.FileInfo
	r    *bytes.Reader
}

func (f *regFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *regFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *regFile) Close() error               { return nil }

type dirFile struct {
	fs      *FS
	e       *entry
	pending []fs.DirEntry
	listed  bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fs.info(d.e), nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.e.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.listed {
		d.pending, d.listed = d.fs.list(d.e), true
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
