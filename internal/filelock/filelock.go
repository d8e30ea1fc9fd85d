// Package filelock is how bootsync processes on one host wait for each
// other: an exclusive flock(2) on a file, waited for until a context ends.
// The kernel drops the lock when its holder dies, so a crash or a reboot
// never leaves it held.
//
// Its users are the state lock of a pass (reconcile), the /etc writer's
// lock (apply/etcoverlay) and the Git cache lock (gitsource).
package filelock

import (
	"context"
	"os"
	"time"

	"github.com/gofrs/flock"
)

// retryDelay is how often a waiter tries again: the locks guard work that
// takes seconds, so a waiter is at most this late.
const retryDelay = 50 * time.Millisecond

// Lock takes an exclusive lock on the file at path, creating the file (not
// its directory) when it is missing, and waits while another process or
// another Lock holds it. When ctx ends first, err is ctx.Err(), so that
// callers can say what was being waited for; otherwise err is the error of
// opening or locking the file. unlock releases the lock.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	if _, err := fl.TryLockContext(ctx, retryDelay); err != nil {
		_ = fl.Close()
		return nil, err
	}
	return func() { _ = fl.Unlock() }, nil
}
