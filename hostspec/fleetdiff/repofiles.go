package fleetdiff

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// changedGroups compares the group files of two revisions by content.
func changedGroups(base, head fs.FS) ([]GroupChange, error) {
	b, err := readDirFiles(base, hostspec.GroupsDir)
	if err != nil {
		return nil, err
	}
	h, err := readDirFiles(head, hostspec.GroupsDir)
	if err != nil {
		return nil, err
	}
	var out []GroupChange
	for name, content := range h {
		old, ok := b[name]
		switch {
		case !ok:
			out = append(out, GroupChange{Name: name, Status: StatusAdded})
		case !bytes.Equal(old, content):
			out = append(out, GroupChange{Name: name, Status: StatusModified})
		}
	}
	for name := range b {
		if _, ok := h[name]; !ok {
			out = append(out, GroupChange{Name: name, Status: StatusRemoved})
		}
	}
	slices.SortFunc(out, func(x, y GroupChange) int { return strings.Compare(x.Name, y.Name) })
	if out == nil {
		out = []GroupChange{}
	}
	return out, nil
}

// readDirFiles maps group names (file base names without .yaml/.yml) to
// their bytes.
func readDirFiles(fsys fs.FS, dir string) (map[string][]byte, error) {
	out := make(map[string][]byte)
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return out, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path.Join(dir, name), err)
		}
		out[strings.TrimSuffix(name, ext)] = data
	}
	return out, nil
}

func fileChanged(base, head fs.FS, name string) (bool, error) {
	read := func(fsys fs.FS) ([]byte, bool, error) {
		b, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", name, err)
		}
		return b, true, nil
	}
	b, bok, err := read(base)
	if err != nil {
		return false, err
	}
	h, hok, err := read(head)
	if err != nil {
		return false, err
	}
	return bok != hok || !bytes.Equal(b, h), nil
}
