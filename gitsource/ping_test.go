package gitsource_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/test/gitserver"
)

func TestPingReadsOnlyTheAdvertisement(t *testing.T) {
	f := newFleet(t, gitserver.WithBasicAuth("fleet", "s3cret"))
	f.push(t, "initial", map[string]string{"fleet.yaml": "kind: Fleet\n"})
	dir := t.TempDir()
	pass, wrong := filepath.Join(dir, "password"), filepath.Join(dir, "wrong")
	writeFile(t, pass, "s3cret\n")
	writeFile(t, wrong, "nope\n")
	user := filepath.Join(dir, "user")
	writeFile(t, user, "fleet\n")
	r := newRemote(t, f.url, gitsource.WithAllowHTTP(), gitsource.WithCacheDir(dir), fast(),
		gitsource.WithBasicAuthFiles(user, pass))

	f.srv.Reset()
	if err := r.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := requestLines(f.srv.Requests()); len(got) != 1 {
		t.Fatalf("Ping made requests %q, want exactly one ref advertisement", got)
	}

	bad := newRemote(t, f.url, gitsource.WithAllowHTTP(), gitsource.WithCacheDir(dir), fast(),
		gitsource.WithBasicAuthFiles(user, wrong))
	var authErr *gitsource.AuthError
	if err := bad.Ping(context.Background()); !errors.As(err, &authErr) {
		t.Fatalf("Ping with a wrong password = %v, want *AuthError", err)
	}

	f.srv.Stop()
	var transient *gitsource.TransientError
	if err := r.Ping(context.Background()); !errors.As(err, &transient) {
		t.Fatalf("Ping with the server down = %v, want *TransientError", err)
	}
}
