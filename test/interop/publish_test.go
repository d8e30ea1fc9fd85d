package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/ocisource/publish"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/cosigntool"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// A fleet artifact published with a key made by `cosign generate-key-pair`
// verifies with the real `cosign verify --key` (v2 and v3), by digest and
// by tag, and not with another key; a host trusting that cosign.pub reads
// it.
func TestRealCosignVerifiesPublishedFleet(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	bare := t.TempDir()
	gittest.Git(t, bare, nil, "init", "-q", "--bare")
	repo := gittest.NewRepo(t, bare)
	repo.Commit("fleet", map[string]string{"fleet.yaml": "kind: Fleet\n", "hosts/web-01.yaml": "image: x\n"})

	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := publish.LoadSigningKey(e.key, passFile)
	if err != nil {
		t.Fatalf("load the key cosign generated: %v", err)
	}
	local, err := gitsource.OpenLocal(ctx, repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := local.Revision(ctx, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	client, err := registry.New(registry.WithAuthRoot(t.TempDir()), registry.WithInsecureRegistries(e.reg.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	url := "oci://" + e.reg.Addr() + "/ops/fleet:main"
	res, err := publish.Publish(ctx, publish.Input{Repository: local.Repository(), Commit: rev.Commit, Branch: "main",
		FS: rev.FS, Path: ".", Target: url, Signer: key, Registry: client})
	if err != nil {
		t.Fatalf("publish to the real registry: %v", err)
	}
	tag := strings.TrimPrefix(url, "oci://")
	for _, c := range []*cosigntool.Cosign{e.cos2, e.cos3} {
		for _, ref := range []string{res.Reference, tag} {
			out, err := c.Verify(ctx, e.pub, ref)
			if err != nil {
				t.Fatalf("cosign %s verify --key cosign.pub %s refused the published fleet: %v", c.Version, ref, err)
			}
			digest := res.Reference[strings.LastIndex(res.Reference, "@")+1:]
			if !strings.Contains(string(out), digest) {
				t.Fatalf("cosign %s verify printed no payload for %s:\n%s", c.Version, digest, out)
			}
		}
		if _, err := c.Verify(ctx, e.otherP, res.Reference); err == nil {
			t.Fatalf("cosign %s verify accepted the fleet artifact with an unrelated key", c.Version)
		}
	}

	// The host side reads it with the same cosign.pub, and refuses it with
	// the other one.
	read := func(pub string) (*gitsource.PollResult, error) {
		src, err := ocisource.New(url, ocisource.WithCacheDir(t.TempDir()), ocisource.WithRegistry(client), ocisource.WithFleetKeys(pub))
		if err != nil {
			t.Fatal(err)
		}
		return src.Poll(context.Background(), "")
	}
	got, err := read(e.pub)
	if err != nil {
		t.Fatalf("a host trusting cosign.pub: %v", err)
	}
	if got.Commit != rev.Commit {
		t.Fatalf("the host read commit %s, want %s", got.Commit, rev.Commit)
	}
	if _, err := read(e.otherP); err == nil {
		t.Fatal("a host trusting another key read the fleet artifact")
	}
}
