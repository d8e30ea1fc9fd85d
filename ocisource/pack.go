package ocisource

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bootsync/bootsync/gitsource"
)

// Entry modes in a fleet artifact: Git knows no others.
const (
	modeDir     = 0o755
	modeFile    = 0o644
	modeExec    = 0o755
	modeSymlink = 0o777
)

// Pack writes the files of fsys (a commit's tree) to w as a fleet
// artifact's content: a gzip'd tar with every directory, regular file and
// symbolic link in name order, directories before what they hold, fixed
// modes (0644, 0755), owner 0 and time 0, so the same tree always packs to
// the same bytes. A submodule, or anything that is neither a file, a
// directory nor a link, is an error naming it: the artifact holds exactly
// what the agent would read from Git.
func Pack(w io.Writer, fsys gitsource.FS) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	if err := packDir(tw, fsys, "."); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

func packDir(tw *tar.Writer, fsys gitsource.FS, dir string) error {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	// fs.ReadDir order is name order; sort anyway, the format depends on it.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, de := range entries {
		name := path.Join(dir, de.Name())
		if err := packEntry(tw, fsys, name); err != nil {
			return err
		}
	}
	return nil
}

func packEntry(tw *tar.Writer, fsys gitsource.FS, name string) error {
	fi, err := fsys.Lstat(name)
	if err != nil {
		return fmt.Errorf("pack %s: %w", name, err)
	}
	hdr := &tar.Header{Name: name, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	var data []byte
	switch m := fi.Mode(); {
	case m.IsDir():
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", modeDir
	case m&fs.ModeSymlink != 0:
		if hdr.Linkname, err = fsys.ReadLink(name); err != nil {
			return fmt.Errorf("pack %s: %w", name, err)
		}
		hdr.Typeflag, hdr.Mode = tar.TypeSymlink, modeSymlink
	case m.IsRegular():
		if data, err = fsys.ReadFile(name); err != nil {
			return fmt.Errorf("pack %s: %w", name, err)
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, modeFile, int64(len(data))
		if m.Perm()&0o111 != 0 {
			hdr.Mode = modeExec
		}
	default:
		return fmt.Errorf("pack %s: %w", name, errors.New("not a file, directory or symbolic link"))
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("pack %s: %w", name, err)
	}
	if len(data) > 0 {
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("pack %s: %w", name, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return packDir(tw, fsys, name)
	}
	return nil
}
