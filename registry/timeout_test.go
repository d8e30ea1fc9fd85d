package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/silent"
)

// A registry that accepts the connection and never answers (or sends
// headers and then stalls in the body) fails the operation with reason
// "timeout" after one network timeout: a stall is not retried.
func TestSilentRegistryTimesOut(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for name, srv := range map[string]func(testing.TB) *silent.Server{
		"no answer": silent.New,
		"headers then nothing": func(t testing.TB) *silent.Server {
			return silent.NewStallAfter(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := srv(t)
			c, err := registry.New(registry.WithInsecureRegistries(s.Addr()), registry.WithNetworkTimeout(timeout),
				registry.WithAuthRoot(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = c.Resolve(context.Background(), s.Addr()+"/os/base:v1")
			took := time.Since(start)
			wantReason(t, err, registry.ReasonTimeout, 0)
			if took > 20*timeout+5*time.Second {
				t.Errorf("Resolve took %s with a network timeout of %s", took, timeout)
			}
			t.Logf("%v", err)
			// go-containerregistry pings an insecure registry over https
			// and http at once, and a ping answered with headers is
			// followed by the request itself: up to four connections. With
			// retries it would be at least twice that.
			if n := s.Accepted(); n > 4 {
				t.Errorf("the client connected %d times: a stalled registry was retried", n)
			}
		})
	}
}
