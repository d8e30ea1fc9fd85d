package registryserver_test

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/test/registryserver"
)

func TestServerCountsAndSurvivesAnOutage(t *testing.T) {
	s := registryserver.New(t)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(s.Addr()+"/demo/x:1", name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if n := s.Count(http.MethodPut, "/v2/demo/x/manifests/1"); n != 1 {
		t.Fatalf("manifest PUTs counted = %d, want 1; requests %v", n, s.Requests())
	}

	s.Reset()
	s.Down()
	_, err = http.Get("http://" + s.Addr() + "/v2/")
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET while down = %v, want connection refused", err)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	// The content survived the outage and the address did not change.
	if _, err := remote.Head(ref); err != nil {
		t.Fatalf("after Up: %v", err)
	}
	// remote.Head is a fresh client: the /v2/ handshake, then the HEAD.
	if got := s.Requests(); len(got) != 2 || got[0].String() != "GET /v2/ 200" || got[1].String() != "HEAD /v2/demo/x/manifests/1 200" {
		t.Fatalf("requests = %v", got)
	}
}
