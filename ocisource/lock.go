package ocisource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive lock on dir's lock file, waiting while
// another process holds it, until ctx ends.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &stateError{err}
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); _ = f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			_ = f.Close()
			return nil, &stateError{fmt.Errorf("lock %s: %w", f.Name(), err)}
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, &stateError{fmt.Errorf("%w: %w", errLocked, ctx.Err())}
		case <-time.After(50 * time.Millisecond):
		}
	}
}
