package gitsource

import (
	"context"
	"fmt"
)

// Ping reads the remote's ref advertisement (one request over HTTP) and
// nothing else: it proves the host can still reach its fleet repository
// with its own transport, credentials and CA bundle, without touching the
// cache or the trust state. The agent's management-plane health check uses
// it after an OS update.
func (r *Remote) Ping(ctx context.Context) error {
	err := r.retry(ctx, "list references", func(ctx context.Context) error {
		sess, _, err := r.advertise(ctx)
		if err != nil {
			return err
		}
		return sess.Close()
	})
	if err != nil {
		return fmt.Errorf("ping %s: %w", r.display, err)
	}
	return nil
}
