package gitsource_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/silent"
)

// A Git server that accepts the connection and then says nothing (over
// HTTP: no response headers, or headers and a body that stops; over SSH: not
// even its version line) fails the poll with reason "timeout" after about
// one network timeout, without retries, and Ping and the read-only clone
// of the CLI do the same.
func TestSilentGitServerTimesOut(t *testing.T) {
	const timeout = 500 * time.Millisecond
	key, _ := gitserver.NewClientKey(t, t.TempDir())
	cases := []struct {
		name string
		srv  func(t testing.TB) *silent.Server
		url  func(addr string) string
		opts []gitsource.Option
	}{
		{"http, no answer", silent.New, func(a string) string { return "http://" + a + "/fleet.git" }, []gitsource.Option{gitsource.WithAllowHTTP()}},
		{"http, headers then nothing", func(t testing.TB) *silent.Server {
			return silent.NewStallAfter(t, "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: 100000\r\n\r\n001e# service=git-upload-pack\n")
		}, func(a string) string { return "http://" + a + "/fleet.git" }, []gitsource.Option{gitsource.WithAllowHTTP()}},
		{"ssh, no version line", silent.New, func(a string) string { return "ssh://git@" + a + "/fleet.git" },
			[]gitsource.Option{gitsource.WithSSHKeyFile(key, ""), gitsource.WithInsecureIgnoreHostKey()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.srv(t)
			opts := append([]gitsource.Option{gitsource.WithCacheDir(t.TempDir()), gitsource.WithNetworkTimeout(timeout),
				gitsource.WithRetry(4, time.Millisecond)}, c.opts...)
			r, err := gitsource.New(c.url(s.Addr()), opts...)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []struct {
				name string
				run  func() error
			}{
				{"poll", func() error { _, err := r.Poll(context.Background(), ""); return err }},
				{"ping", func() error { return r.Ping(context.Background()) }},
				{"clone for reading", func() error {
					_, err := gitsource.CloneForRead(context.Background(), c.url(s.Addr()), filepath.Join(t.TempDir(), "cli"), opts[1:]...)
					return err
				}},
			} {
				before := s.Accepted()
				start := time.Now()
				err := op.run()
				took := time.Since(start)
				var te *gitsource.TimeoutError
				if !errors.As(err, &te) || gitsource.ReasonOf(err) != gitsource.ReasonTimeout {
					t.Fatalf("%s: err = %v (reason %q), want a *TimeoutError", op.name, err, gitsource.ReasonOf(err))
				}
				if !strings.Contains(err.Error(), "did not answer within the network timeout of 500ms") {
					t.Errorf("%s: message %q does not say what happened", op.name, err)
				}
				// One attempt of a few phases, not four retries; the bound is
				// wide for a loaded machine.
				if took > 20*timeout+5*time.Second {
					t.Errorf("%s took %s with a network timeout of %s", op.name, took, timeout)
				}
				if n := s.Accepted() - before; n != 1 {
					t.Errorf("%s connected %d times, want once (a stalled server is not retried)", op.name, n)
				}
			}
		})
	}
}
