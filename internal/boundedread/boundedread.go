// Package boundedread reads files without trusting their size: local files
// named on the command line or in the host configuration (keys, CA bundles,
// credential files) must be regular files no larger than a limit, so that
// `--key /dev/zero`, a FIFO or a multi-gigabyte file is an error instead of
// a hang or an exhausted memory.
package boundedread

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// MaxLocalFile bounds every local file bootsync reads for its own
// configuration: keys, CA bundles, credentials, known_hosts, config files.
// The largest honest one is a CA bundle (the Mozilla roots are ~220 KB).
const MaxLocalFile = 4 << 20

// TooLargeError is a file larger than a limit.
type TooLargeError struct {
	Size  int64 // -1 when only known to exceed Limit
	Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("larger than the limit of %s", FormatSize(e.Limit))
	}
	return fmt.Sprintf("%s, larger than the limit of %s", FormatSize(e.Size), FormatSize(e.Limit))
}

// Is makes errors.Is(err, syscall.EFBIG) true.
func (e *TooLargeError) Is(target error) bool { return target == syscall.EFBIG }

// FormatSize renders a byte count for messages: "4 MiB", "1.5 KiB", "17 bytes".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + suffix
}

// ReadFile reads the local file path, which must be a regular file of at
// most limit bytes. A FIFO or device is refused without blocking (it is
// opened non-blocking and checked before anything is read).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", describe(fi.Mode()))}
	}
	if fi.Size() > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: &TooLargeError{Size: fi.Size(), Limit: limit}}
	}
	return ReadAll(f, fi.Size(), limit, path)
}

// ReadAll reads r, which should hold sizeHint bytes, refusing more than
// limit (a file can grow while it is read). name is for the error.
func ReadAll(r io.Reader, sizeHint, limit int64, name string) ([]byte, error) {
	buf := make([]byte, 0, min(max(sizeHint, 0), limit)+1)
	for {
		if int64(len(buf)) > limit {
			return nil, &fs.PathError{Op: "read", Path: name, Err: &TooLargeError{Size: -1, Limit: limit}}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit+1)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(buf)) > limit {
				return nil, &fs.PathError{Op: "read", Path: name, Err: &TooLargeError{Size: -1, Limit: limit}}
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}
