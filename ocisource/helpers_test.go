package ocisource_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/ocisource/publish"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/registrytest"
)

// fleet is a fleet repository in Git, published to an in-process registry.
type fleet struct {
	t      *testing.T
	git    *gittest.Repo
	reg    *registrytest.Registry
	client *registry.Client
	key    signature.SignerVerifier
	pub    string // the key's public half, a PEM file
	url    string // oci://…/ops/fleet:main
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	bare := t.TempDir()
	gittest.Git(t, bare, nil, "init", "-q", "--bare")
	f := &fleet{t: t, git: gittest.NewRepo(t, bare), reg: registrytest.New(t, false)}
	f.client = newClient(t, f.reg.Host, registry.DefaultRetryPolicy)
	f.key, f.pub = newKey(t)
	f.url = "oci://" + f.reg.Host + "/ops/fleet:main"
	return f
}

func newClient(t *testing.T, host string, retry registry.RetryPolicy) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.WithInsecureRegistries(host), registry.WithAuthRoot(t.TempDir()), registry.WithRetry(retry))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t *testing.T) (signature.SignerVerifier, string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "fleet.pub")
	if err := os.WriteFile(pub, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return sv, pub
}

// commit commits files to the fleet's Git repository.
func (f *fleet) commit(files map[string]string) string {
	f.t.Helper()
	return f.git.Commit("change", files)
}

// publish publishes the commit at HEAD to tag with key (the fleet's own
// when nil).
func (f *fleet) publish(tag string, key signature.SignerVerifier, reset string) *publish.Result {
	f.t.Helper()
	res, err := f.tryPublish(tag, key, reset)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fleet) tryPublish(tag string, key signature.SignerVerifier, reset string) (*publish.Result, error) {
	f.t.Helper()
	if key == nil {
		key = f.key
	}
	local, err := gitsource.OpenLocal(context.Background(), f.git.Dir)
	if err != nil {
		f.t.Fatal(err)
	}
	rev, err := local.Revision(context.Background(), "HEAD")
	if err != nil {
		f.t.Fatal(err)
	}
	return publish.Publish(context.Background(), publish.Input{
		Repository: local.Repository(), Commit: rev.Commit, Branch: "main", FS: rev.FS, Path: ".",
		Target: "oci://" + f.reg.Host + "/ops/fleet:" + tag, Signer: key, Registry: f.client, AllowReset: reset,
	})
}

// clock is a settable clock for the backoff.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// source is a host's source for the fleet: no retries within a poll, as
// the agent configures it.
func (f *fleet) source(dir string, opts ...ocisource.Option) *ocisource.Source {
	f.t.Helper()
	base := []ocisource.Option{ocisource.WithCacheDir(dir), ocisource.WithRegistry(newClient(f.t, f.reg.Host, registry.NoRetry)),
		ocisource.WithFleetKeys(f.pub)}
	s, err := ocisource.New(f.url, append(base, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fleet) poll(s *ocisource.Source, last string) *gitsource.PollResult {
	f.t.Helper()
	res, err := s.Poll(context.Background(), last)
	if err != nil {
		f.t.Fatalf("poll: %v", err)
	}
	return res
}

// reasonOf is the reason the agent would record for err.
func reasonOf(err error) ocisource.Reason {
	r, ok := err.(interface{ SourceReason() ocisource.Reason })
	if !ok {
		return ocisource.Reason("(no source reason: " + err.Error() + ")")
	}
	return r.SourceReason()
}

func unavailable(status int, retryAfter string) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		return true
	}
}
