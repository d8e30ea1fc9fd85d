package fleetdiff

import (
	"context"
	"crypto/sha1" //nolint:gosec // Git's object IDs, compared, not trusted
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
)

// objectIDEntry is a directory entry that knows its Git mode and object ID
// (gitsource.TreeFS): two trees with the same ID hold the same files.
type objectIDEntry interface {
	ObjectID() string
}

// Git's modes, as gitsource's ObjectID writes them.
const (
	gitModeDir     = "0040000"
	gitModeFile    = "0100644"
	gitModeExec    = "0100755"
	gitModeSymlink = "0120000"
)

// changedPaths lists the files (and entries that are neither files nor
// directories) that differ between two revisions, by content, Git mode or
// presence. Subtrees with the same Git object ID are skipped unread; a side
// without IDs (the working tree) is hashed the way Git hashes blobs, so it
// compares with a commit without reading the commit's files. ".git" is not
// part of a revision and is skipped.
func changedPaths(ctx context.Context, base, head fs.FS) ([]string, error) {
	var out []string
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := listDir(base, dir)
		if err != nil {
			return err
		}
		h, err := listDir(head, dir)
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(b, h) {
			if name == ".git" {
				continue
			}
			p := path.Join(dir, name)
			bid, err := entryID(base, p, b[name])
			if err != nil {
				return err
			}
			hid, err := entryID(head, p, h[name])
			if err != nil {
				return err
			}
			if bid == hid && bid != "" && bid[0] != '?' {
				continue
			}
			bdir, hdir := isDirEntry(b[name]), isDirEntry(h[name])
			if bdir || hdir {
				if bdir != hdir && (b[name] != nil && h[name] != nil) {
					out = append(out, p) // a file became a directory, or back
				}
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			out = append(out, p)
		}
		return nil
	}
	return out, walk(".")
}

func isDirEntry(de fs.DirEntry) bool { return de != nil && de.IsDir() }

// listDir maps the names in dir to their entries; a missing directory (or
// one that is a file at this revision) is empty.
func listDir(fsys fs.FS, dir string) (map[string]fs.DirEntry, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if fi, serr := fs.Stat(fsys, dir); errors.Is(err, fs.ErrNotExist) || (serr == nil && !fi.IsDir()) {
			return map[string]fs.DirEntry{}, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	m := make(map[string]fs.DirEntry, len(entries))
	for _, e := range entries {
		m[e.Name()] = e
	}
	return m, nil
}

// entryID is the Git mode and object ID of an entry: from the entry where
// it knows it, else computed for files and links. It is "" for a missing
// entry and for directories without an ID (they are always walked).
func entryID(fsys fs.FS, p string, de fs.DirEntry) (string, error) {
	if de == nil {
		return "", nil
	}
	if o, ok := de.(objectIDEntry); ok {
		return o.ObjectID(), nil
	}
	switch t := de.Type(); {
	case t.IsDir():
		return "", nil
	case t&fs.ModeSymlink != 0:
		target, err := fs.ReadLink(fsys, p)
		if err != nil {
			return "", fmt.Errorf("read link %s: %w", p, err)
		}
		return gitModeSymlink + " " + gitBlobID([]byte(target)), nil
	case t.IsRegular():
		info, err := de.Info()
		if err != nil {
			return "", fmt.Errorf("stat %s: %w", p, err)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", p, err)
		}
		mode := gitModeFile
		if info.Mode().Perm()&0o100 != 0 {
			mode = gitModeExec
		}
		return mode + " " + gitBlobID(data), nil
	default:
		// A socket, device or submodule: never equal, so it counts as a
		// change that cannot be attributed.
		return "?" + strconv.Itoa(int(t)), nil
	}
}

// gitBlobID is the object ID Git gives a blob with this content.
func gitBlobID(data []byte) string {
	h := sha1.New() //nolint:gosec // Git's object IDs
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}
