package etcoverlay

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/internal/faultpoint"
)

// tempPrefix starts the name of every temporary file the writer creates next
// to a target. A file with this prefix is only ever a write that was
// interrupted (crash, power loss), so Plan lists it and Apply removes it; it
// is never a managed file.
const tempPrefix = ".bootsync-tmp-"

// errMissing says a directory on the way to a target does not exist.
var errMissing = errors.New("does not exist")

// refusedError says a path cannot be used because something on disk is not
// what a configuration file or its directory must be (a symbolic link, a
// directory, a device). Writing through it could redirect bootsync's write
// anywhere on the host, so it is refused, never worked around.
type refusedError struct {
	path string // host path, e.g. /etc/ssh
	what string // "is a symbolic link"
}

func (e *refusedError) Error() string {
	return e.path + " " + e.what + "; bootsync never follows or replaces it"
}

// fileKind classifies what Lstat sees at a path.
type fileKind int

const (
	kindMissing fileKind = iota
	kindRegular
	kindSymlink
	kindDir
	kindOther
)

func (k fileKind) String() string {
	switch k {
	case kindMissing:
		return "missing"
	case kindRegular:
		return "a regular file"
	case kindSymlink:
		return "a symbolic link"
	case kindDir:
		return "a directory"
	default:
		return "a special file (device, fifo or socket)"
	}
}

func kindOf(mode uint32) fileKind {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return kindRegular
	case unix.S_IFLNK:
		return kindSymlink
	case unix.S_IFDIR:
		return kindDir
	default:
		return kindOther
	}
}

// observed is what is on disk at a target.
type observed struct {
	kind     fileKind
	size     int64
	mode     uint32 // permission bits, 07777
	uid, gid int
	sha      string // hex sha256 of the content, keyed for secrets (regular files only)
	content  []byte // the first `keep` bytes asked for, or all of them
	complete bool   // content is the whole file
	digest   digester
}

func (o observed) exists() bool { return o.kind != kindMissing }

// state returns the observation as a FileState.
func (o observed) state() FileState {
	if o.kind == kindMissing {
		return FileState{}
	}
	return FileState{Exists: true, SHA256: o.sha, Size: o.size, Mode: fileMode(o.mode), UID: o.uid, GID: o.gid}
}

// dirTree opens directories below a root one component at a time with
// O_NOFOLLOW|O_DIRECTORY, and does everything else relative to the parent's
// descriptor (openat, renameat, unlinkat). No symbolic link anywhere below
// the root can redirect a read or a write: a compromised /etc must not turn
// "write /etc/foo/bar.conf" into a write to /root/.ssh/authorized_keys.
type dirTree struct {
	root   string
	rootFD int
	dirs   map[string]int  // "etc/ssh" → descriptor
	absent map[string]bool // directories found missing (lookups without create)
}

func openTree(root string) (*dirTree, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root directory %s: %w", root, err)
	}
	return &dirTree{root: root, rootFD: fd, dirs: map[string]int{"": fd}, absent: map[string]bool{}}, nil
}

func (t *dirTree) Close() {
	for _, fd := range t.dirs {
		unix.Close(fd)
	}
	t.dirs = nil
}

// dir returns a descriptor for the directory rel ("etc/ssh", "" for the
// root). With create, missing directories are made 0755 and owned by root,
// and made durable before anything is written into them.
func (t *dirTree) dir(rel string, create bool) (int, error) {
	if fd, ok := t.dirs[rel]; ok {
		return fd, nil
	}
	if !create && t.absent[rel] {
		return -1, errMissing
	}
	parentRel, name := path.Split(rel)
	parentRel = strings.TrimSuffix(parentRel, "/")
	parent, err := t.dir(parentRel, create)
	if err != nil {
		if err == errMissing {
			t.absent[rel] = true
		}
		return -1, err
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, name, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		if !create {
			t.absent[rel] = true
			return -1, errMissing
		}
		created := true
		if err := unix.Mkdirat(parent, name, 0o755); errors.Is(err, unix.EEXIST) {
			created = false // made by someone else meanwhile: leave it as it is
		} else if err != nil {
			return -1, fmt.Errorf("create directory %s: %w", hostPath(rel), err)
		}
		fd, err = unix.Openat(parent, name, flags, 0)
		if err == nil && created {
			err = initNewDir(fd, parent)
			if err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("create directory %s: %w", hostPath(rel), err)
			}
		}
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			var st unix.Stat_t
			if serr := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil {
				return -1, &refusedError{path: hostPath(rel), what: "is " + kindOf(uint32(st.Mode)).String() + ", not a directory"}
			}
		}
		return -1, fmt.Errorf("open directory %s: %w", hostPath(rel), err)
	}
	t.dirs[rel] = fd
	return fd, nil
}

// initNewDir gives a directory bootsync just created its documented mode and
// owner (the umask must not decide) and makes its entry durable.
func initNewDir(fd, parent int) error {
	if err := unix.Fchown(fd, 0, 0); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		return err
	}
	return unix.Fsync(parent)
}

// observe looks at name in dirfd without following a symbolic link. For a
// regular file it hashes the whole content and keeps its first keep bytes
// (keep < 0: all of it).
func observe(dirfd int, name string, keep int, dg digester) (observed, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return observed{kind: kindMissing}, nil
		}
		return observed{}, err
	}
	o := observed{
		digest: dg,
		kind:   kindOf(uint32(st.Mode)),
		size:   st.Size,
		mode:   uint32(st.Mode) & 0o7777,
		uid:    int(st.Uid),
		gid:    int(st.Gid),
	}
	if o.kind != kindRegular {
		return o, nil
	}
	// O_NONBLOCK: should the file be swapped for a fifo between the stat and
	// the open, the open must not hang the agent.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return observed{}, err
	}
	defer unix.Close(fd)
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil {
		return observed{}, err
	}
	if kindOf(uint32(st2.Mode)) != kindRegular || st2.Ino != st.Ino || st2.Dev != st.Dev {
		return observed{}, errors.New("changed while being read")
	}
	o.size, o.mode, o.uid, o.gid = st2.Size, uint32(st2.Mode)&0o7777, int(st2.Uid), int(st2.Gid)
	if err := readContent(fd, &o, keep, dg); err != nil {
		return observed{}, err
	}
	return o, nil
}

// copyBuffers serve hashing of files too large to keep in memory.
var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// readContent hashes the file open at fd and keeps its first keep bytes
// (keep < 0: all). Small files, the common case in /etc, are read in one
// go into a buffer of their size.
func readContent(fd int, o *observed, keep int, dg digester) error {
	if keep < 0 || o.size <= int64(keep) {
		buf := make([]byte, 0, o.size+1) // +1: a short read then means EOF
		for {
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, 4096)
			}
			want := cap(buf) - len(buf)
			n, err := unix.Read(fd, buf[len(buf):cap(buf)])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			buf = buf[:len(buf)+n]
			if n == 0 || n < want {
				break
			}
		}
		o.sha, o.size = dg.sum(buf), int64(len(buf))
		o.content, o.complete = buf, true
		if keep >= 0 && len(buf) > keep { // it grew while being read
			o.content, o.complete = buf[:keep], false
		}
		return nil
	}
	h := dg.newHash()
	chunk := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(chunk)
	kept := make([]byte, 0, keep)
	var total int64
	for {
		n, err := unix.Read(fd, chunk[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		h.Write(chunk[:n])
		if room := keep - len(kept); room > 0 {
			kept = append(kept, chunk[:min(room, n)]...)
		}
		total += int64(n)
	}
	o.sha, o.size = dg.format(h.Sum(nil)), total
	o.content, o.complete = kept, total <= int64(keep)
	return nil
}

// writeFileAt replaces name in dirfd with content, atomically: a temporary
// file in the same directory gets the content, owner and mode, is fsynced,
// renamed over name, and the directory is fsynced so the rename survives a
// power loss. Readers see the old or the new file, never a mix; a crash
// leaves at worst a temporary file that the next pass removes. A label
// (SELinux) is set on the temporary file too, before the rename.
func writeFileAt(dirfd int, name string, content []byte, mode uint32, uid, gid int, label string) error {
	var random [8]byte
	if _, err := rand.Read(random[:]); err != nil {
		return err
	}
	tmp := tempPrefix + hex.EncodeToString(random[:])
	// 0600 until the final mode is set: content must never be readable by
	// more users than the spec allows, not even for a moment.
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	faultpoint.Reach("temp-created")
	f := os.NewFile(uintptr(fd), tmp)
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	if _, err := f.Write(content); err != nil {
		return fmt.Errorf("write temporary file: %w", err)
	}
	faultpoint.Reach("temp-written")
	// chown before chmod: chown clears the set-user-ID and set-group-ID bits.
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("set owner %d:%d: %w", uid, gid, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("set mode %04o: %w", mode, err)
	}
	if err := setLabelFD(fd, label); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync temporary file: %w", err)
	}
	faultpoint.Reach("temp-synced")
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		return fmt.Errorf("rename temporary file into place: %w", err)
	}
	renamed = true
	faultpoint.Reach("renamed")
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	faultpoint.Reach("dir-synced")
	return nil
}

// removeAt unlinks name in dirfd (a symbolic link itself, never its target)
// and makes the removal durable.
func removeAt(dirfd int, name string) error {
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	faultpoint.Reach("unlinked")
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	faultpoint.Reach("dir-synced")
	return nil
}

// leftoversAt lists the temporary files an interrupted write left in dirfd.
func leftoversAt(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), ".")
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, tempPrefix) {
			out = append(out, n)
		}
	}
	return out, nil
}

// hostPath turns a root-relative path ("etc/ssh") into the path it has on
// the host ("/etc/ssh"), which is what errors and reports name.
func hostPath(rel string) string { return "/" + rel }
