package gitsource

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// largeObject is the size from which go-git reads an object lazily instead
// of inflating it into memory when it is looked up: a loose object (a local
// checkout that has not been packed) is then refused by its size, like a
// packed one, before its content is read.
const largeObject = 1 << 20

// ReadFileLimit is ReadFile for a file of at most limit bytes: a larger
// blob is refused from its object header, before its content is inflated,
// so a commit that adds a huge file costs nothing to look at.
func (f *TreeFS) ReadFileLimit(name string, limit int64) ([]byte, error) {
	n, err := f.resolve("read", name, true)
	if err != nil {
		return nil, err
	}
	if n.tree != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data, err := f.readBlobLimit(n.entry.Hash, limit)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

func (f *TreeFS) readBlobLimit(h plumbing.Hash, limit int64) ([]byte, error) {
	defer lockStore(f.objects)()
	b, err := object.GetBlob(f.objects, h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	if b.Size > limit {
		return nil, &boundedread.TooLargeError{Size: b.Size, Limit: limit}
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := boundedread.ReadAll(r, b.Size, limit, h.String())
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	return data, nil
}
