package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bootsync/bootsync/internal/filelock"
)

// LockStateDir takes the state directory's lock, waiting until ctx ends: one
// pass at a time per host, whether it runs in the agent or in a `bootsync
// reconcile` or `bootsync reboot` beside it, and no journal edit (reboot,
// unquarantine) in the middle of a pass. The kernel drops the lock when the
// holder dies, so a reboot or a crash never leaves it stale.
func LockStateDir(ctx context.Context, stateDir string) (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	unlock, err = filelock.Lock(ctx, filepath.Join(stateDir, "agent.lock"))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("lock state: another pass is running: %w", err)
	case err != nil:
		return nil, fmt.Errorf("lock state: %w", err)
	}
	return unlock, nil
}
