package hostspec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// errSymlinkEscapes is the cause when a path of the repository goes through
// a symbolic link that points outside the repository.
var errSymlinkEscapes = errors.New("symbolic link points outside the repository")

const maxSymlinkHops = 40

// repoFS reads a fleet repository without ever leaving it. os.DirFS follows
// symbolic links anywhere, so a link committed as files/x -> /etc/shadow
// would leak the machine's files into a host's /etc; every path is
// therefore resolved component by component with Lstat and ReadLink
// (io/fs.ReadLinkFS, implemented by os.DirFS and gitsource.TreeFS), and
// links that leave the repository are refused. Results are cached: Load
// asks for the same directories and files many times.
type repoFS struct {
	fsys     fs.FS
	resolved map[string]realEntry
	data     map[string][]byte
	// cache, when set, is shared with another revision's load: content
	// by Git object ID (readFile) and decoded documents (decodeAll).
	cache *DecodeCache

	// limits bound each file and everything read together (see Limits).
	limits *effectiveLimits
	total  int64
}

// realEntry is a path with every symbolic link resolved.
type realEntry struct {
	path string
	mode fs.FileMode // from Lstat of the resolved path
	// typeOnly is set when mode holds only the type bits (from a directory
	// listing); permissions need a Stat.
	typeOnly bool
	// oid is the Git mode and object ID of a listed file, when the file
	// system knows it (gitsource.TreeFS): equal IDs are equal content.
	oid string
}

// objectIDEntry is a directory entry that knows its Git object ID.
type objectIDEntry interface{ ObjectID() string }

// listed records a directory entry that is not a symbolic link: its real
// path is its parent's plus its name, and a later lookup need not ask the
// file system again (for a Git tree every lookup walks from the root).
func (r *repoFS) listed(name string, parent realEntry, de fs.DirEntry) realEntry {
	if e, ok := r.resolved[name]; ok {
		return e
	}
	e := realEntry{path: path.Join(parent.path, de.Name()), mode: de.Type(), typeOnly: true}
	if o, ok := de.(objectIDEntry); ok {
		e.oid = o.ObjectID()
	}
	r.resolved[name] = e
	return e
}

// perm returns the permission bits of a resolved regular file.
func (r *repoFS) perm(e realEntry) (fs.FileMode, error) {
	if !e.typeOnly {
		return e.mode.Perm(), nil
	}
	fi, err := fs.Lstat(r.fsys, e.path)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}

func newRepoFS(fsys fs.FS) *repoFS {
	return &repoFS{fsys: fsys, resolved: map[string]realEntry{".": {path: ".", mode: fs.ModeDir}}, data: map[string][]byte{}}
}

// symlinkError says which link leaves the repository.
type symlinkError struct {
	link, target string
}

func (e *symlinkError) Error() string {
	return fmt.Sprintf("%s -> %s: %v", e.link, e.target, errSymlinkEscapes)
}

func (e *symlinkError) Unwrap() error { return errSymlinkEscapes }

// real resolves name (a valid fs path) to a path without symbolic links.
func (r *repoFS) real(name string) (realEntry, error) {
	return r.realHops(name, 0)
}

func (r *repoFS) realHops(name string, hops int) (realEntry, error) {
	if e, ok := r.resolved[name]; ok {
		return e, nil
	}
	parent := realEntry{path: ".", mode: fs.ModeDir}
	if dir := path.Dir(name); dir != "." {
		var err error
		if parent, err = r.realHops(dir, hops); err != nil {
			return realEntry{}, err
		}
	}
	if !parent.mode.IsDir() {
		return realEntry{}, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%s is not a directory: %w", path.Dir(name), fs.ErrNotExist)}
	}
	p := path.Join(parent.path, path.Base(name))
	fi, err := fs.Lstat(r.fsys, p)
	if err != nil {
		return realEntry{}, err
	}
	e := realEntry{path: p, mode: fi.Mode()}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if hops >= maxSymlinkHops {
			return realEntry{}, &fs.PathError{Op: "open", Path: name, Err: errors.New("too many levels of symbolic links")}
		}
		target, err := fs.ReadLink(r.fsys, p)
		if err != nil {
			return realEntry{}, err
		}
		joined := path.Join(parent.path, target)
		if path.IsAbs(target) || joined == ".." || strings.HasPrefix(joined, "../") {
			return realEntry{}, &symlinkError{link: p, target: target}
		}
		if joined == "." {
			e = realEntry{path: ".", mode: fs.ModeDir}
		} else if e, err = r.realHops(joined, hops+1); err != nil {
			return realEntry{}, err
		}
	}
	r.resolved[name] = e
	return e, nil
}

// readFile reads a regular file of the repository of at most the limit
// named limit (fileSize or documentSize), and counts it against repoSize.
func (r *repoFS) readFile(name, limit string) ([]byte, realEntry, error) {
	e, err := r.real(name)
	if err != nil {
		return nil, e, err
	}
	if !e.mode.IsRegular() {
		return nil, e, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("not a regular file (%s)", describeMode(e.mode))}
	}
	if b, ok := r.data[e.path]; ok {
		return b, e, nil
	}
	b, err := r.readShared(e, limit)
	if err != nil {
		return nil, e, err
	}
	r.total += int64(len(b))
	if r.total > r.limits.RepoSize {
		return nil, e, &fs.PathError{Op: "read", Path: name, Err: &limitError{limit: "repoSize", size: r.total}}
	}
	r.data[e.path] = b
	return b, e, nil
}

// readShared reads a file within the named limit, or takes its content
// from another revision's read of the same Git object, which is the same
// bytes: a diff of a change to fleet.yaml reads each host file once, not
// once per revision.
func (r *repoFS) readShared(e realEntry, limit string) ([]byte, error) {
	max := *r.limits.field(limit)
	if b, ok := r.cache.blob(e.oid); ok && int64(len(b)) <= max {
		return b, nil
	}
	b, err := r.readLimited(e.path, max, limit)
	if err == nil {
		r.cache.putBlob(e.oid, b)
	}
	return b, err
}

// modeNames describe the types of repository entries.
var modeNames = map[fs.FileMode]string{fs.ModeDir: "a directory", fs.ModeSymlink: "a symbolic link", 0: "a file"}

func describeMode(m fs.FileMode) string {
	if s, ok := modeNames[m.Type()]; ok {
		return s
	}
	return "a special file"
}

// repoFile is a regular file found under a directory.
type repoFile struct {
	rel  string // path below the directory walked, with the names as listed
	real realEntry
}

// walkFiles lists the regular files under dir (recursively, in name
// order), resolving symbolic links inside the repository. A link to a
// directory is refused rather than followed: it could loop, and the tree a
// reviewer sees should be the tree that is copied.
func (r *repoFS) walkFiles(dir string) ([]repoFile, error) {
	var out []repoFile
	var walk func(rel string) error
	walk = func(rel string) error {
		full := dir
		if rel != "" {
			full = path.Join(dir, rel)
		}
		e, err := r.real(full)
		if err != nil {
			return err
		}
		entries, err := fs.ReadDir(r.fsys, e.path)
		if err != nil {
			return err
		}
		for _, de := range entries {
			childRel := path.Join(rel, de.Name())
			childFull := path.Join(dir, childRel)
			var ce realEntry
			if de.Type()&(fs.ModeSymlink|fs.ModeIrregular) == 0 {
				ce = r.listed(childFull, e, de)
			} else if ce, err = r.real(childFull); err != nil {
				return err // a submodule or mount point says so here
			}
			switch {
			case ce.mode.IsDir() && de.Type()&fs.ModeSymlink != 0:
				return &fs.PathError{Op: "walk", Path: childFull, Err: errors.New("is a symbolic link to a directory; links to directories are not followed")}
			case ce.mode.IsDir():
				if err := walk(childRel); err != nil {
					return err
				}
			case ce.mode.IsRegular():
				out = append(out, repoFile{rel: childRel, real: ce})
			default:
				return &fs.PathError{Op: "walk", Path: childFull, Err: fmt.Errorf("not a regular file (%s)", describeMode(ce.mode))}
			}
		}
		return nil
	}
	return out, walk("")
}

// problem turns a file-system error into a message for users.
func problem(err error) string {
	var se *symlinkError
	switch {
	case errors.As(err, &se):
		return se.Error()
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory in the repository"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// "is a Git submodule", "is on another file system": say which path.
		if msg := pe.Err.Error(); strings.HasPrefix(msg, "is ") {
			return pe.Path + " " + msg
		}
		return pe.Err.Error()
	}
	return err.Error()
}

// forget drops the cached content of a file read before: for documents
// that are read once, so that reading a fleet in batches does not keep
// every batch's bytes. The file still counts against repoSize.
func (r *repoFS) forget(name string) {
	if e, ok := r.resolved[name]; ok {
		delete(r.data, e.path)
	}
}
