package gitsource

import (
	"context"
	"time"
)

// SetRetrySleep replaces the wait between retries, so tests run fast and can
// act (restart a server) while Poll waits.
func SetRetrySleep(r *Remote, sleep func(context.Context, time.Duration) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleep = sleep
}

// SetMaxPacks lowers the number of packs after which a cache is re-cloned.
func SetMaxPacks(r *Remote, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxPacks = n
}
