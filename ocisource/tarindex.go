package ocisource

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Bounds on a fleet artifact's entries, beyond its size (WithSizeLimit).
const (
	maxEntries    = 1 << 20 // files, directories and links
	maxPathLength = 4096
	maxDepth      = 256
)

// InvalidContentError is a fleet artifact whose tar is not what `bootsync
// publish` writes: a path that leaves the artifact, a duplicate entry, a
// device or hard link, a mode Git cannot hold, too many entries. Nothing of
// such an artifact is used.
type InvalidContentError struct {
	Entry string // the tar entry's name, as stored ("" for the archive as a whole)
	Err   error
}

func (e *InvalidContentError) Error() string {
	if e.Entry == "" {
		return "invalid fleet artifact content: " + e.Err.Error()
	}
	return fmt.Sprintf("invalid fleet artifact content: entry %q: %v", e.Entry, e.Err)
}

func (e *InvalidContentError) Unwrap() error { return e.Err }

// entry is one file, directory or link of an artifact.
type entry struct {
	name   string      // full path inside the artifact, no leading or trailing slash
	mode   fs.FileMode // type bits plus 0644, 0755 or 0777
	size   int64
	offset int64  // where a file's content starts in the tar
	target string // a link's target
	// children of a directory, in name order.
	children []*entry
}

// index is an artifact's table of contents. It is built once, after every
// entry was checked, and never changes: safe for concurrent readers.
type index struct {
	root    *entry
	entries map[string]*entry
}

// positionReader tracks the offset in a tar file, so that each entry's
// content can be read later at its offset. archive/tar reads headers in
// whole blocks and skips content with Seek, never reading ahead.
type positionReader struct {
	r   io.ReadSeeker
	pos int64
}

func (p *positionReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *positionReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.r.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// indexTar reads the headers of the tar in r (uncompressed) and checks
// every entry before anything is used.
func indexTar(r io.ReadSeeker) (*index, error) {
	pr := &positionReader{r: r}
	tr := tar.NewReader(pr)
	root := &entry{name: ".", mode: fs.ModeDir | modeDir}
	ix := &index{root: root, entries: map[string]*entry{".": root}}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return ix, nil
		}
		if err != nil {
			return nil, &InvalidContentError{Err: fmt.Errorf("read tar: %w", err)}
		}
		if len(ix.entries) > maxEntries {
			return nil, &InvalidContentError{Err: fmt.Errorf("more than %d entries", maxEntries)}
		}
		e, err := checkHeader(hdr)
		if err != nil {
			return nil, &InvalidContentError{Entry: hdr.Name, Err: err}
		}
		e.offset = pr.pos
		if err := ix.add(e); err != nil {
			return nil, &InvalidContentError{Entry: hdr.Name, Err: err}
		}
	}
}

// checkHeader accepts what Pack writes and nothing else.
func checkHeader(hdr *tar.Header) (*entry, error) {
	name := hdr.Name
	if hdr.Typeflag == tar.TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	switch {
	case len(name) > maxPathLength:
		return nil, fmt.Errorf("path longer than %d bytes", maxPathLength)
	case strings.ContainsRune(name, 0):
		return nil, errors.New("path contains a NUL byte")
	case !fs.ValidPath(name) || name == ".":
		// Absolute paths, "..", "." and empty elements, trailing slashes.
		return nil, errors.New("path is not a clean relative path inside the artifact")
	case strings.Count(name, "/") >= maxDepth:
		return nil, fmt.Errorf("path is more than %d directories deep", maxDepth)
	}
	for k := range hdr.PAXRecords {
		if k != "path" && k != "linkpath" && k != "size" {
			return nil, fmt.Errorf("unexpected PAX record %q (sparse files and extended attributes are not part of a fleet artifact)", k)
		}
	}
	perm := hdr.Mode & 0o7777
	e := &entry{name: name}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if perm != modeDir {
			return nil, fmt.Errorf("directory mode %04o, want %04o", perm, modeDir)
		}
		e.mode = fs.ModeDir | modeDir
	case tar.TypeReg:
		if perm != modeFile && perm != modeExec {
			return nil, fmt.Errorf("file mode %04o, want %04o or %04o", perm, modeFile, modeExec)
		}
		e.mode, e.size = fs.FileMode(perm), hdr.Size
	case tar.TypeSymlink:
		switch {
		case perm != modeSymlink:
			return nil, fmt.Errorf("link mode %04o, want %04o", perm, modeSymlink)
		case hdr.Linkname == "" || len(hdr.Linkname) > maxPathLength || strings.ContainsRune(hdr.Linkname, 0):
			return nil, errors.New("link target is empty, too long or contains a NUL byte")
		}
		e.mode, e.target = fs.ModeSymlink|modeSymlink, hdr.Linkname
	default:
		return nil, fmt.Errorf("entry type %q is not a file, directory or symbolic link (hard links, devices and FIFOs are not part of a fleet artifact)", hdr.Typeflag)
	}
	if hdr.Typeflag != tar.TypeReg && hdr.Size != 0 {
		return nil, fmt.Errorf("a %s has size %d", describe(e.mode), hdr.Size)
	}
	return e, nil
}

// add links e under its parent, which must be a directory listed before it.
func (ix *index) add(e *entry) error {
	if _, dup := ix.entries[e.name]; dup {
		return errors.New("duplicate entry: the path appears twice")
	}
	parent, ok := ix.entries[path.Dir(e.name)]
	switch {
	case !ok:
		return fmt.Errorf("its directory %s is not listed before it", path.Dir(e.name))
	case !parent.mode.IsDir():
		return fmt.Errorf("%s is %s, not a directory", path.Dir(e.name), describe(parent.mode))
	}
	if n := len(parent.children); n > 0 && parent.children[n-1].name >= e.name {
		return errors.New("entries are not in name order")
	}
	parent.children = append(parent.children, e)
	ix.entries[e.name] = e
	return nil
}

func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a file"
}
