package filelock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testTimeout only bounds a test that went wrong; nothing here races it.
const testTimeout = 30 * time.Second

func TestLockWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	unlock, err := Lock(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v", fi, err)
	}

	got := make(chan error, 1)
	released := make(chan struct{})
	go func() {
		unlock2, err := Lock(ctx, path)
		select {
		case <-released:
		default:
			err = errors.New("took the lock while it was held")
		}
		if unlock2 != nil {
			unlock2()
		}
		got <- err
	}()
	// Another attempt with an ended context gives up with ctx's error.
	done, stop := context.WithCancel(ctx)
	stop()
	if _, err := Lock(done, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with an ended context = %v, want context.Canceled", err)
	}
	close(released)
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestLockReportsWhatItCannotOpen(t *testing.T) {
	_, err := Lock(context.Background(), filepath.Join(t.TempDir(), "missing", "x.lock"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}
