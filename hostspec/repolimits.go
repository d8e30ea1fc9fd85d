package hostspec

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// limitError is a repository file (or the repository) over a limit.
type limitError struct {
	limit string // fileSize, documentSize or repoSize
	size  int64  // -1 when only known to be over
}

func (e *limitError) Error() string {
	return fmt.Sprintf("larger than limits.%s", e.limit)
}

// limitedReadFS is implemented by file systems that can refuse a file over
// a limit before reading it (gitsource.TreeFS checks a blob's size in its
// object header); others are opened and stat'ed first.
type limitedReadFS interface {
	ReadFileLimit(name string, limit int64) ([]byte, error)
}

// readLimited reads a file of at most limit bytes. The size is checked
// before the content is read, so a 200 MB file costs nothing.
func (r *repoFS) readLimited(name string, limit int64, limitName string) ([]byte, error) {
	var b []byte
	var err error
	if lf, ok := r.fsys.(limitedReadFS); ok {
		b, err = lf.ReadFileLimit(name, limit)
	} else {
		b, err = readViaStat(r.fsys, name, limit)
	}
	var tl *boundedread.TooLargeError
	if errors.As(err, &tl) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: &limitError{limit: limitName, size: tl.Size}}
	}
	return b, err
}

func readViaStat(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && fi.Size() > limit {
		err = &fs.PathError{Op: "read", Path: name, Err: &boundedread.TooLargeError{Size: fi.Size(), Limit: limit}}
	}
	if err != nil {
		return nil, err
	}
	return boundedread.ReadAll(f, fi.Size(), limit, name)
}

// limitProblem turns a limit error into a problem for users: what is too
// large, by how much, and which limit says so. ok is false for other errors.
func (l *loader) limitProblem(file string, src Source, field, what string, err error) (*Error, bool) {
	var le *limitError
	if !errors.As(err, &le) {
		return nil, false
	}
	e := &Error{File: file, Line: src.Line, Column: src.Column, Field: field, Limit: le.limit}
	switch {
	case le.limit == "repoSize":
		e.Msg = fmt.Sprintf("the files read from the repository add up to more than %s: remove large files or raise the limit", l.limits.explain(le.limit))
	case le.size >= 0:
		e.Msg = fmt.Sprintf("%s is %s, larger than %s", what, boundedread.FormatSize(le.size), l.limits.explain(le.limit))
	default:
		e.Msg = fmt.Sprintf("%s is larger than %s", what, l.limits.explain(le.limit))
	}
	return e, true
}

// addLimitProblem records a limit problem; going over repoSize is
// recorded once, at the first file that did.
func (l *loader) addLimitProblem(e *Error) {
	if e.Limit == "repoSize" {
		if l.repoSizeReported {
			return
		}
		l.repoSizeReported = true
	}
	l.errs = append(l.errs, e)
}
