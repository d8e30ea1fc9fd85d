package policy_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/registrytest"
	"github.com/bootsync/bootsync/test/signer"
)

func newTestRegistry(t testing.TB, referrersAPI bool) *registrytest.Registry {
	return registrytest.New(t, referrersAPI)
}

// push writes a random image to repo:tag and returns repo@digest.
func push(tr *registrytest.Registry, repo, tag string) string {
	d, _ := tr.PushRandom(repo, tag)
	return tr.Host + "/" + repo + "@" + d
}

// pushIndex writes a linux/amd64 + linux/arm64 index and returns
// repo@index-digest and the amd64 manifest's repo@digest.
func pushIndex(tr *registrytest.Registry, repo, tag string) (string, string) {
	idx, perArch := tr.PushIndex(repo, tag)
	return tr.Host + "/" + repo + "@" + idx, tr.Host + "/" + repo + "@" + perArch["amd64"]
}

func newSigner(t testing.TB) *signer.Signer {
	t.Helper()
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyFile writes s's public key to a file and returns its path.
func keyFile(t testing.TB, s *signer.Signer, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := s.WritePublicKey(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func newClient(t testing.TB) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.WithAuthRoot(t.TempDir()),
		registry.WithRetry(registry.RetryPolicy{Max: 2, MinWait: time.Millisecond, MaxWait: 2 * time.Millisecond, MaxRetryAfter: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
