package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/registrytest"
)

// newTestRegistry is the recording in-process registry, with the referrers API.
func newTestRegistry(t testing.TB) *registrytest.Registry { return registrytest.New(t, true) }

// fastRetry keeps retry tests quick; the policy is the same.
var fastRetry = registry.RetryPolicy{Max: 3, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond, MaxRetryAfter: 2 * time.Second}

func newClient(t testing.TB, opts ...registry.Option) *registry.Client {
	t.Helper()
	opts = append([]registry.Option{registry.WithRetry(fastRetry), registry.WithAuthRoot(t.TempDir())}, opts...)
	c, err := registry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context { return t.Context() }

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
