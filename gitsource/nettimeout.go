package gitsource

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/net/proxy"

	"github.com/bootsync/bootsync/internal/netdeadline"
)

// WithNetworkTimeout bounds each phase of every request to the server:
// connecting, the TLS or SSH handshake, the first byte of each answer and
// every pause while a pack downloads (default netdeadline.Default). A
// server that stalls for that long fails the poll at once with reason
// "timeout" instead of being retried: a fleet should not wait on it.
func WithNetworkTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("network timeout must be positive, not %s", d)
		}
		o.netTimeout = d
		return nil
	}
}

// ReasonTimeout is a server that accepted the connection and then did not
// answer within the network timeout.
const ReasonTimeout Reason = "timeout"

// TimeoutError is a network step the server let run past the timeout.
type TimeoutError struct {
	URL     string // redacted
	Timeout time.Duration
	Err     error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s did not answer within the network timeout of %s: %v", e.URL, e.Timeout, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// transportFor returns the go-git transport for ep with the network
// timeout on every phase. For SSH, go-git's dialer only bounds the TCP
// connect; the timeout is put on the connection through go-git's proxy
// hook (see sshTimeoutScheme), which is the one place it lets us supply the
// net.Conn.
func (r *Remote) transportFor(ep *transport.Endpoint) (transport.Transport, error) {
	d := r.opts.netTimeout
	switch ep.Protocol {
	case "http", "https":
		r.httpOnce.Do(func() {
			r.httpClient = githttp.NewClient(&http.Client{Transport: netdeadline.Transport(d)})
		})
		return r.httpClient, nil
	case "ssh":
		if ep.Proxy.URL == "" {
			registerSSHTimeoutDialer()
			ep.Proxy = transport.ProxyOptions{URL: sshTimeoutScheme + "://deadline?timeout=" + url.QueryEscape(d.String())}
		}
	}
	return client.NewClient(ep)
}

// sshTimeoutScheme names the dialer registered with golang.org/x/net/proxy
// for SSH connections with deadlines. It honours ALL_PROXY like the
// dialer it replaces.
const sshTimeoutScheme = "bootsync-deadline"

var registerSSHOnce sync.Once

func registerSSHTimeoutDialer() {
	registerSSHOnce.Do(func() {
		proxy.RegisterDialerType(sshTimeoutScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
			d, err := time.ParseDuration(u.Query().Get("timeout"))
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("bad network timeout %q", u.Query().Get("timeout"))
			}
			return sshDialer{timeout: d}, nil
		})
	})
}

type sshDialer struct{ timeout time.Duration }

func (s sshDialer) Dial(network, addr string) (net.Conn, error) {
	return s.DialContext(context.Background(), network, addr)
}

func (s sshDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	base := proxy.FromEnvironmentUsing(&net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second})
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if cd, ok := base.(proxy.ContextDialer); ok {
			return cd.DialContext(ctx, network, addr)
		}
		return base.Dial(network, addr)
	}
	return netdeadline.Dialer(s.timeout, dial)(ctx, network, addr)
}

// timedOut reports whether a network step failed because the server let
// a phase run past the network timeout (not because ctx ended).
func timedOut(ctx context.Context, err error) bool {
	return ctx.Err() == nil && causes(err, netdeadline.IsTimeout)
}
