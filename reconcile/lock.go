package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockState takes the state directory's lock, waiting until ctx ends: one
// pass at a time per host, whether it runs in the agent or in a `bootsync
// reconcile` or `bootsync reboot` beside it, and no journal edit (reboot,
// unquarantine) in the middle of a pass. The kernel drops the lock when the
// holder dies, so a reboot or a crash never leaves it stale.
func LockState(ctx context.Context, stateDir string) (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "agent.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock state: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock state: another pass is running: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
