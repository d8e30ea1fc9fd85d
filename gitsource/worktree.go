package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"golang.org/x/sys/unix"
)

// ErrSubmodule is the cause when a path of the repository is a Git
// submodule or a nested Git repository. Its files are not the fleet
// repository's: a commit holds only a pointer to another repository, and a
// working tree holds another repository's files (and its .git). Both
// TreeFS and WorkTreeFS refuse them, so CI and hosts see the same thing.
var ErrSubmodule = errors.New("is a Git submodule (or a nested Git repository): bootsync reads only the fleet repository's own files; commit the files themselves instead")

// ErrOtherFileSystem is the cause when a path of a working tree is a mount
// point (or a bind mount): its content is not part of the repository.
var ErrOtherFileSystem = errors.New("is on another file system (a mount point): it is not part of the repository")

// WorkTreeFS is a checkout's working tree as the commit of it would be: the
// files Git tracks plus the untracked ones it does not ignore, with their
// content (uncommitted edits included) read from disk. It never shows
// anything of .git, never follows a symbolic link out of its root, never
// crosses a mount point, and refuses submodules and nested repositories
// (ErrSubmodule), like TreeFS does for the same commit. A directory that is
// not inside a Git checkout is read whole, with the same rules.
//
// It implements fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS,
// and is safe for concurrent use.
type WorkTreeFS struct {
	top  string // the checkout's top directory (or the plain directory), absolute, without links
	base string // the view's root relative to top ("." or "examples/fleet")
	dev  mountID
	git  bool // top is a Git checkout: tracked and ignore rules apply
	// exclude is the repository's info/exclude file (in the common Git
	// directory, also for a linked worktree).
	exclude string

	tracked     map[string]bool // files in the index, top-relative
	trackedDirs map[string]bool // directories holding tracked files
	gitlinks    map[string]bool // submodules in the index

	mu       sync.Mutex
	ignores  map[string][]gitignore.Pattern // by directory: the patterns in effect there
	dirShown map[string]bool                // untracked directories: does a visible file live below?
	dirs     map[string]fs.FileInfo         // shown directories, by top-relative path
}

var (
	_ fs.ReadDirFS  = (*WorkTreeFS)(nil)
	_ fs.ReadFileFS = (*WorkTreeFS)(nil)
	_ fs.StatFS     = (*WorkTreeFS)(nil)
	_ fs.ReadLinkFS = (*WorkTreeFS)(nil)
)

// OpenWorkTree returns the working tree at dir: dir is the view's root, and
// the checkout that contains it (found as git does, searching parent
// directories) says which files count.
func OpenWorkTree(ctx context.Context, dir string) (*WorkTreeFS, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("open working tree %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open working tree: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("open working tree %s: not a directory", dir)
	}
	w := &WorkTreeFS{top: abs, base: ".", tracked: map[string]bool{}, trackedDirs: map[string]bool{},
		gitlinks: map[string]bool{}, ignores: map[string][]gitignore.Pattern{}, dirShown: map[string]bool{},
		dirs: map[string]fs.FileInfo{}}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	switch {
	case errors.Is(err, git.ErrRepositoryNotExists):
		// A plain directory: everything in it counts.
	case err != nil:
		return nil, fmt.Errorf("open working tree %s: %w", dir, err)
	default:
		if err := w.readIndex(repo, abs); err != nil {
			return nil, fmt.Errorf("open working tree %s: %w", dir, err)
		}
	}
	if w.dev, err = mountOf(w.top); err != nil {
		return nil, fmt.Errorf("open working tree %s: %w", dir, err)
	}
	return w, nil
}

// readIndex records what the index tracks and where the view sits in the
// checkout.
func (w *WorkTreeFS) readIndex(repo *git.Repository, dir string) error {
	wt, err := repo.Worktree()
	if err != nil {
		return nil // a bare repository's directory: read it plainly
	}
	top, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return fmt.Errorf("resolve checkout root: %w", err)
	}
	rel, err := filepath.Rel(top, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is not inside the checkout %s", dir, top)
	}
	if rel == ".git" || strings.HasPrefix(rel, ".git/") {
		return fmt.Errorf("%s is inside .git, not the working tree", dir)
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return fmt.Errorf("read the Git index: %w", err)
	}
	w.top, w.base, w.git = top, filepath.ToSlash(rel), true
	w.exclude = excludeFile(repo, top)
	for _, e := range idx.Entries {
		if e.Mode == filemode.Submodule {
			w.gitlinks[e.Name] = true
		} else {
			w.tracked[e.Name] = true
		}
		for d := path.Dir(e.Name); d != "."; d = path.Dir(d) {
			if w.trackedDirs[d] {
				break
			}
			w.trackedDirs[d] = true
		}
	}
	return nil
}

func (w *WorkTreeFS) disk(full string) string { return filepath.Join(w.top, filepath.FromSlash(full)) }

// entry is a path of the view with every symbolic link resolved.
type entry struct {
	full string // top-relative, no links
	info fs.FileInfo
}

// resolve walks name (a path of the view) component by component: every
// component must be shown, symbolic links are followed inside the view's
// root (the last one only if followLast).
func (w *WorkTreeFS) resolve(op, name string, followLast bool) (entry, error) {
	if !fs.ValidPath(name) {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e, err := w.walk(name, followLast, 0)
	if err != nil {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

func (w *WorkTreeFS) walk(name string, followLast bool, hops int) (entry, error) {
	cur := entry{full: w.base}
	if name == "." {
		fi, err := os.Stat(w.disk(w.base))
		return entry{full: w.base, info: fi}, err
	}
	parts := strings.Split(name, "/")
	for i, part := range parts {
		if i > 0 && !cur.info.IsDir() {
			return entry{}, fs.ErrNotExist // a file used as a directory
		}
		full := path.Join(cur.full, part)
		fi, err := w.lstatShown(full)
		if err != nil {
			return entry{}, err
		}
		last := i == len(parts)-1
		if fi.Mode()&fs.ModeSymlink != 0 && (!last || followLast) {
			if hops >= maxSymlinkHops {
				return entry{}, errors.New("too many levels of symbolic links")
			}
			target, err := os.Readlink(w.disk(full))
			if err != nil {
				return entry{}, err
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(path.Dir(full), w.base), "/")
			joined := path.Join(rel, target)
			if path.IsAbs(target) || !fs.ValidPath(joined) {
				return entry{}, fmt.Errorf("%s -> %s: %w", strings.TrimPrefix(strings.TrimPrefix(full, w.base), "/"), target, ErrSymlinkEscapes)
			}
			return w.walk(path.Join(append([]string{joined}, parts[i+1:]...)...), followLast, hops+1)
		}
		cur = entry{full: full, info: fi}
	}
	return cur, nil
}

// lstatShown describes full (whose parent is a shown directory without
// links) if the view shows it.
func (w *WorkTreeFS) lstatShown(full string) (fs.FileInfo, error) {
	if path.Base(full) == ".git" {
		return nil, fs.ErrNotExist // Git's own files are never content
	}
	w.mu.Lock()
	fi, ok := w.dirs[full]
	w.mu.Unlock()
	if ok {
		return fi, nil
	}
	fi, err := w.lstatDisk(full)
	if err == nil && fi.IsDir() {
		// Every file below a directory looks it up again: remember it.
		w.mu.Lock()
		w.dirs[full] = fi
		w.mu.Unlock()
	}
	return fi, err
}

func (w *WorkTreeFS) lstatDisk(full string) (fs.FileInfo, error) {
	fi, err := os.Lstat(w.disk(full))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fs.ErrNotExist
		}
		return nil, err
	}
	if err := w.sameMount(full); err != nil {
		return nil, err
	}
	switch {
	case fi.IsDir():
		if w.isSubmodule(full) {
			return nil, ErrSubmodule
		}
		if !w.dirVisible(full) {
			return nil, fs.ErrNotExist
		}
	case fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0:
		if !w.fileVisible(full) {
			return nil, fs.ErrNotExist
		}
	default:
		return nil, fs.ErrNotExist // Git cannot commit devices, pipes or sockets
	}
	return fi, nil
}

// isSubmodule reports a submodule in the index or a directory holding a
// repository of its own.
func (w *WorkTreeFS) isSubmodule(full string) bool {
	if w.gitlinks[full] {
		return true
	}
	if full == "." {
		return false
	}
	_, err := os.Lstat(filepath.Join(w.disk(full), ".git"))
	return err == nil
}

func (w *WorkTreeFS) sameMount(full string) error {
	id, err := mountOf(w.disk(full))
	if err != nil {
		return err
	}
	if id != w.dev {
		return ErrOtherFileSystem
	}
	return nil
}

// fileVisible: tracked, or untracked and not ignored.
func (w *WorkTreeFS) fileVisible(full string) bool {
	if !w.git || w.tracked[full] {
		return true
	}
	return !w.ignored(full, false)
}

// dirVisible: a directory exists in a commit only if a file lives below
// it; the view's root always exists.
func (w *WorkTreeFS) dirVisible(full string) bool {
	if !w.git || full == w.base || w.trackedDirs[full] {
		return true
	}
	if w.ignored(full, true) {
		return false
	}
	w.mu.Lock()
	shown, ok := w.dirShown[full]
	w.mu.Unlock()
	if ok {
		return shown
	}
	shown = w.hasShownChild(full)
	w.mu.Lock()
	w.dirShown[full] = shown
	w.mu.Unlock()
	return shown
}

func (w *WorkTreeFS) hasShownChild(full string) bool {
	des, err := os.ReadDir(w.disk(full))
	if err != nil {
		return false
	}
	for _, de := range des {
		child := path.Join(full, de.Name())
		if de.Name() == ".git" {
			return true // a nested repository: `git add` would record it
		}
		if _, err := w.lstatShown(child); err == nil || errors.Is(err, ErrSubmodule) || errors.Is(err, ErrOtherFileSystem) {
			return true
		}
	}
	return false
}

// ignored applies .git/info/exclude and the .gitignore files on the way to
// full, as git does: below an ignored directory everything is ignored.
func (w *WorkTreeFS) ignored(full string, isDir bool) bool {
	parts := strings.Split(full, "/")
	for i := 1; i <= len(parts); i++ {
		dir := "."
		if i > 1 {
			dir = path.Join(parts[:i-1]...)
		}
		m := gitignore.NewMatcher(w.patterns(dir))
		if m.Match(parts[:i], i < len(parts) || isDir) {
			return true
		}
	}
	return false
}

// patterns returns the ignore patterns in effect in dir (top-relative),
// reading each .gitignore once.
func (w *WorkTreeFS) patterns(dir string) []gitignore.Pattern {
	w.mu.Lock()
	ps, ok := w.ignores[dir]
	w.mu.Unlock()
	if ok {
		return ps
	}
	var inherited []gitignore.Pattern
	var domain []string
	if dir == "." {
		inherited = readPatterns(w.exclude, nil)
	} else {
		inherited = w.patterns(path.Dir(dir))
		domain = strings.Split(dir, "/")
	}
	ps = append(inherited[:len(inherited):len(inherited)], readPatterns(filepath.Join(w.disk(dir), ".gitignore"), domain)...)
	w.mu.Lock()
	w.ignores[dir] = ps
	w.mu.Unlock()
	return ps
}

// excludeFile finds info/exclude: in .git, or in the common directory a
// linked worktree's Git directory names.
func excludeFile(repo *git.Repository, top string) string {
	gitDir := filepath.Join(top, ".git")
	if st, ok := repo.Storer.(*filesystem.Storage); ok {
		gitDir = st.Filesystem().Root()
	}
	if b, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		common := strings.TrimSpace(string(b))
		if !filepath.IsAbs(common) {
			common = filepath.Join(gitDir, common)
		}
		gitDir = common
	}
	return filepath.Join(gitDir, "info", "exclude")
}

// readPatterns reads one ignore file; like git, it does not follow a
// symbolic link there, and a missing file has no patterns.
func readPatterns(file string, domain []string) []gitignore.Pattern {
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil
	}
	var ps []gitignore.Pattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	return ps
}
