// Package netdeadline gives every network call a deadline for each of its
// phases: connecting, the TLS handshake, the first byte of the answer and
// every later pause. A server that accepts a connection and then says
// nothing (or stops in the middle) costs one timeout, not a hung agent.
//
// The deadline is per phase, not per call: a large download that keeps
// making progress is never cut off, while a silent server is given up on
// after Timeout.
package netdeadline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Default is the network timeout when the configuration sets none.
const Default = 15 * time.Second

// Dialer connects within timeout and returns connections on which every
// read must make progress within timeout of the last activity (a write
// also counts, so a request answered promptly after an idle spell in the
// connection pool is not cut off).
func Dialer(timeout time.Duration, base func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if base == nil {
		base = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c, err := base(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c, timeout), nil
	}
}

// Wrap makes every read and write on c fail once nothing moved for timeout.
func Wrap(c net.Conn, timeout time.Duration) net.Conn {
	return &idleConn{Conn: c, timeout: timeout}
}

type idleConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Read(p)
	return n, c.explain(err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	deadline := time.Now().Add(c.timeout)
	_ = c.Conn.SetWriteDeadline(deadline)
	// The answer to what is written now may take up to timeout.
	_ = c.Conn.SetReadDeadline(deadline)
	n, err := c.Conn.Write(p)
	return n, c.explain(err)
}

func (c *idleConn) explain(err error) error {
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return &StallError{After: c.timeout, Err: err}
	}
	return err
}

// StallError is a connection on which nothing arrived for Timeout.
type StallError struct {
	After time.Duration
	Err   error
}

func (e *StallError) Error() string {
	return fmt.Sprintf("the server sent nothing for %s (network timeout)", e.After)
}

func (e *StallError) Unwrap() error { return e.Err }

// Timeout makes a StallError a net.Error that timed out.
func (e *StallError) Timeout() bool   { return true }
func (e *StallError) Temporary() bool { return true }

// IsTimeout reports whether err is a network phase that ran out of time:
// a stalled connection, a connect, TLS handshake or response-header
// timeout. Callers check their own context first: an expired context is a
// timeout too.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Transport is an HTTP transport with timeout on every phase: connect, TLS
// handshake, response headers and every pause in the body.
func Transport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           Dialer(timeout, nil),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          20,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
}
