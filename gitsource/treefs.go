package gitsource

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrSymlinkEscapes is returned when a symbolic link in a commit's tree
// points outside the tree (absolute, or through "..").
var ErrSymlinkEscapes = errors.New("symbolic link points outside the repository")

// maxSymlinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinkHops = 40

// TreeFS is a commit's tree as a read-only file system, read straight from
// the object store: there is no working tree, so nothing can be left
// half-written. Symbolic links inside the tree are followed by Open; links
// that leave the tree fail with ErrSymlinkEscapes. Lstat and ReadLink let
// callers see links for themselves. Submodules fail with ErrSubmodule and
// are listed as irregular entries, never silently left out.
type TreeFS struct {
	objects storer.EncodedObjectStorer
	root    *object.Tree
	modTime time.Time
	// trees caches decoded trees by hash. Trees are immutable, and a
	// decoded tree keeps its name index, so a lookup in a directory of
	// 10,000 host files is a map access instead of a decode and a scan.
	trees *sync.Map // plumbing.Hash → *object.Tree
}

var (
	_ fs.ReadDirFS   = (*TreeFS)(nil)
	_ fs.ReadFileFS  = (*TreeFS)(nil)
	_ fs.StatFS      = (*TreeFS)(nil)
	_ fs.ReadLinkFS  = (*TreeFS)(nil)
	_ fs.ReadDirFile = (*treeDir)(nil)
)

// NewTreeFS returns the tree of commit as a file system. All entries report
// the committer time as their modification time.
func NewTreeFS(objects storer.EncodedObjectStorer, commit *object.Commit) (*TreeFS, error) {
	unlock := lockStore(objects)
	root, err := object.GetTree(objects, commit.TreeHash)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("read tree of commit %s: %w", commit.Hash, err)
	}
	indexTree(root)
	return &TreeFS{objects: objects, root: root, modTime: commit.Committer.When, trees: &sync.Map{}}, nil
}

// treeNode is a resolved path: a directory (tree != nil) or a leaf entry.
type treeNode struct {
	name  string
	tree  *object.Tree
	entry object.TreeEntry
}

func (f *TreeFS) resolve(op, name string, followLast bool) (treeNode, error) {
	if !fs.ValidPath(name) {
		return treeNode{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, err := f.walk(name, followLast, 0)
	if err != nil {
		return treeNode{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

func (f *TreeFS) walk(name string, followLast bool, hops int) (treeNode, error) {
	cur := treeNode{name: ".", tree: f.root}
	if name == "." {
		return cur, nil
	}
	parts := strings.Split(name, "/")
	for i, part := range parts {
		if cur.tree == nil {
			return treeNode{}, fs.ErrNotExist // a file used as a directory
		}
		e, err := cur.tree.FindEntry(part)
		if err != nil {
			return treeNode{}, fs.ErrNotExist
		}
		full := path.Join(cur.name, part)
		last := i == len(parts)-1
		switch {
		case e.Mode == filemode.Dir:
			t, err := f.tree(e.Hash)
			if err != nil {
				return treeNode{}, fmt.Errorf("read tree %s: %w", full, err)
			}
			cur = treeNode{name: full, tree: t}
		case e.Mode == filemode.Symlink && (!last || followLast):
			if hops >= maxSymlinkHops {
				return treeNode{}, fmt.Errorf("too many levels of symbolic links")
			}
			target, err := f.readBlob(e.Hash)
			if err != nil {
				return treeNode{}, err
			}
			t := string(target)
			joined := path.Join(cur.name, t)
			if path.IsAbs(t) || !fs.ValidPath(joined) {
				return treeNode{}, fmt.Errorf("%s -> %s: %w", full, t, ErrSymlinkEscapes)
			}
			rest := path.Join(append([]string{joined}, parts[i+1:]...)...)
			return f.walk(rest, followLast, hops+1)
		case e.Mode == filemode.Submodule:
			return treeNode{}, ErrSubmodule
		default:
			cur = treeNode{name: full, entry: *e}
		}
	}
	return cur, nil
}

// storeLocks serializes reads of each object store: go-git's filesystem
// storage shares packfile handles and caches between readers without
// synchronization, and concurrent reads fail with "object not found".
var storeLocks sync.Map // storer.EncodedObjectStorer → *sync.Mutex

func lockStore(s storer.EncodedObjectStorer) func() {
	m, _ := storeLocks.LoadOrStore(s, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func (f *TreeFS) tree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := f.trees.Load(h); ok {
		return t.(*object.Tree), nil
	}
	unlock := lockStore(f.objects)
	t, err := object.GetTree(f.objects, h)
	unlock()
	if err != nil {
		return nil, err
	}
	indexTree(t)
	actual, _ := f.trees.LoadOrStore(h, t)
	return actual.(*object.Tree), nil
}

// indexTree builds a tree's lazy name index before the tree is shared
// between goroutines: go-git builds it on first lookup, unsynchronized.
func indexTree(t *object.Tree) { _, _ = t.FindEntry(".bootsync-index") }

func (f *TreeFS) readBlob(h plumbing.Hash) ([]byte, error) {
	defer lockStore(f.objects)()
	b, err := object.GetBlob(f.objects, h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	return data, nil
}

func (f *TreeFS) info(n treeNode) (fs.FileInfo, error) {
	fi := treeFileInfo{name: path.Base(n.name), modTime: f.modTime}
	if n.tree != nil {
		fi.mode = fs.ModeDir | 0o755
		return fi, nil
	}
	unlock := lockStore(f.objects)
	size, err := f.objects.EncodedObjectSize(n.entry.Hash)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("size of %s: %w", n.name, err)
	}
	fi.size = size
	switch n.entry.Mode {
	case filemode.Executable:
		fi.mode = 0o755
	case filemode.Symlink:
		fi.mode = fs.ModeSymlink | 0o777
	default:
		fi.mode = 0o644
	}
	return fi, nil
}

// Open opens name, following symbolic links inside the tree.
func (f *TreeFS) Open(name string) (fs.File, error) {
	n, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if n.tree != nil {
		return &treeDir{fs: f, node: n, info: fi}, nil
	}
	data, err := f.readBlob(n.entry.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &treeFile{info: fi, r: strings.NewReader(string(data))}, nil
}

// ReadFile reads a whole file, following symbolic links inside the tree.
func (f *TreeFS) ReadFile(name string) ([]byte, error) {
	n, err := f.resolve("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.tree != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data, err := f.readBlob(n.entry.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// Stat describes name, following symbolic links inside the tree.
func (f *TreeFS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return f.info(n)
}

// Lstat describes name without following a final symbolic link.
func (f *TreeFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return f.info(n)
}

// ReadLink returns the target of the symbolic link name.
func (f *TreeFS) ReadLink(name string) (string, error) {
	n, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.tree != nil || n.entry.Mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := f.readBlob(n.entry.Hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(target), nil
}

// ReadDir lists a directory in name order without following links.
func (f *TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.tree == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return f.entries(n)
}

func (f *TreeFS) entries(dir treeNode) ([]fs.DirEntry, error) {
	out := make([]fs.DirEntry, 0, len(dir.tree.Entries))
	for _, e := range dir.tree.Entries {
		if e.Mode == filemode.Submodule {
			// Listed, so that walkers report it instead of skipping it.
			out = append(out, refusedEntry{name: e.Name, err: &fs.PathError{Op: "lstat", Path: path.Join(dir.name, e.Name), Err: ErrSubmodule}})
			continue
		}
		out = append(out, treeDirEntry{fs: f, node: treeNode{name: path.Join(dir.name, e.Name), entry: e}})
	}
	// Git sorts directories as if their names ended in "/"; fs.ReadDir
	// promises plain name order.
	sortDirEntries(out)
	return out, nil
}

func sortDirEntries(es []fs.DirEntry) {
	slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
}

type treeFileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i treeFileInfo) Name() string       { return i.name }
func (i treeFileInfo) Size() int64        { return i.size }
func (i treeFileInfo) Mode() fs.FileMode  { return i.mode }
func (i treeFileInfo) ModTime() time.Time { return i.modTime }
func (i treeFileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i treeFileInfo) Sys() any           { return nil }

type treeDirEntry struct {
	fs   *TreeFS
	node treeNode
}

func (e treeDirEntry) Name() string { return path.Base(e.node.name) }
func (e treeDirEntry) IsDir() bool  { return e.node.entry.Mode == filemode.Dir }
func (e treeDirEntry) Type() fs.FileMode {
	switch e.node.entry.Mode {
	case filemode.Dir:
		return fs.ModeDir
	case filemode.Symlink:
		return fs.ModeSymlink
	default:
		return 0
	}
}

func (e treeDirEntry) Info() (fs.FileInfo, error) {
	n := e.node
	if n.entry.Mode == filemode.Dir {
		t, err := e.fs.tree(n.entry.Hash)
		if err != nil {
			return nil, err
		}
		n.tree = t
	}
	return e.fs.info(n)
}

type treeFile struct {
	info fs.FileInfo
	r    *strings.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *treeFile) Close() error               { return nil }

type treeDir struct {
	fs      *TreeFS
	node    treeNode
	info    fs.FileInfo
	pending []fs.DirEntry
	listed  bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.node.name, Err: errors.New("is a directory")}
}
func (d *treeDir) Close() error { return nil }

func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.listed {
		es, err := d.fs.entries(d.node)
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

// Subtree returns the directory dir of the tree as a TreeFS of its own
// (following symbolic links inside the tree to find it). Unlike fs.Sub, links
// inside the result are resolved against the new root, so a link that leaves
// dir fails with ErrSymlinkEscapes: dir is all the caller sees.
func (f *TreeFS) Subtree(dir string) (FS, error) {
	return f.subtree(dir)
}

func (f *TreeFS) subtree(dir string) (*TreeFS, error) {
	n, err := f.resolve("open", dir, true)
	if err != nil {
		return nil, err
	}
	if n.tree == nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.New("not a directory")}
	}
	return &TreeFS{objects: f.objects, root: n.tree, modTime: f.modTime, trees: f.trees}, nil
}

// ObjectID identifies the entry's content as Git does: its mode and object
// hash ("0100644 <sha1>"), so that two trees can be compared without
// reading the files (a tree's ID covers everything below it).
func (e treeDirEntry) ObjectID() string {
	return e.node.entry.Mode.String() + " " + e.node.entry.Hash.String()
}
