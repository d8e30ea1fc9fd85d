package publish_test

import (
	"context"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource/publish"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/registrytest"
)

func newRepo(t *testing.T) *gittest.Repo {
	t.Helper()
	bare := t.TempDir()
	gittest.Git(t, bare, nil, "init", "-q", "--bare")
	return gittest.NewRepo(t, bare)
}

func generation(t *testing.T, dir, rev string) int64 {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		t.Fatal(err)
	}
	g, err := publish.Generation(context.Background(), repo, *h)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The generation is the longest parent chain: a merge is one more than
// its longer side, so every descendant is higher than its ancestors.
func TestGenerationIsTheLongestParentChain(t *testing.T) {
	r := newRepo(t)
	r.Commit("1", map[string]string{"a": "1"})
	r.Commit("2", map[string]string{"a": "2"})
	gittest.Git(t, r.Dir, nil, "checkout", "-q", "-b", "side", "HEAD~1")
	for i := range 4 {
		r.Commit("side", map[string]string{"b": strings.Repeat("x", i+1)})
	}
	gittest.Git(t, r.Dir, nil, "checkout", "-q", "main")
	gittest.Git(t, r.Dir, nil, "merge", "-q", "--no-edit", "side")
	for rev, want := range map[string]int64{"main~1": 2, "side": 5, "main": 6, "main^1": 2, "main^2": 5} {
		if got := generation(t, r.Dir, rev); got != want {
			t.Errorf("generation of %s = %d, want %d", rev, got, want)
		}
	}
}

// A shallow clone cannot give a generation: publishing says how to fix it.
func TestShallowCloneIsRefused(t *testing.T) {
	r := newRepo(t)
	for i := range 3 {
		r.Commit("c", map[string]string{"a": strings.Repeat("x", i+1)})
	}
	r.Push()
	shallow := filepath.Join(t.TempDir(), "shallow")
	gittest.Git(t, t.TempDir(), nil, "clone", "-q", "--depth", "1", "--branch", "main", "file://"+r.Origin, shallow)
	repo, err := git.PlainOpen(shallow)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Generation(context.Background(), repo, head.Hash()); !errors.Is(err, publish.ErrShallow) {
		t.Fatalf("generation in a shallow clone: %v, want ErrShallow", err)
	}
}

// cosign's encrypted key and a plain PKCS#8 key are both accepted; a wrong
// password and a missing password file say so.
func TestSigningKeyFormats(t *testing.T) {
	dir := t.TempDir()
	encrypted, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(encrypted), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Fatalf("test setup: not cosign's format:\n%s", encrypted)
	}
	plain, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), func(bool) ([]byte, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	enc, pkcs8 := write("cosign.key", string(encrypted)), write("plain.key", string(plain))
	good, bad := write("pass", "s3cret\n"), write("wrong", "guess")
	if !strings.Contains(string(plain), "BEGIN PRIVATE KEY") {
		t.Fatalf("test setup: not PKCS#8:\n%s", plain)
	}
	for _, tc := range []struct {
		key, pass, wantErr string
	}{
		{enc, good, ""},
		{pkcs8, "", ""},
		{enc, bad, "cannot decrypt"},
		{enc, "", "is encrypted: give its password"},
		{write("junk.key", "not a key"), "", "not a supported private key"},
	} {
		_, err := publish.LoadSigningKey(tc.key, tc.pass)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("LoadSigningKey(%s, %q) = %v, want %q", filepath.Base(tc.key), filepath.Base(tc.pass), err, tc.wantErr)
		}
	}
}

// Publishing the same commit again writes nothing: no blob, manifest or
// signature, and the digest stays.
func TestPublishingTheSameCommitAgainChangesNothing(t *testing.T) {
	r := newRepo(t)
	r.Commit("fleet", map[string]string{"fleet/fleet.yaml": "kind: Fleet\n", "README": "not packed\n"})
	reg := registrytest.New(t, false)
	client, err := registry.New(registry.WithInsecureRegistries(reg.Host), registry.WithAuthRoot(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "k.key")
	plain, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), func(bool) ([]byte, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := publish.LoadSigningKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	local, err := gitsource.OpenLocal(context.Background(), r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := local.Revision(context.Background(), "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rev.FS.Subtree("fleet")
	if err != nil {
		t.Fatal(err)
	}
	in := publish.Input{Repository: local.Repository(), Commit: rev.Commit, Branch: "main", FS: sub, Path: "fleet",
		Target: "oci://" + reg.Host + "/ops/fleet:main", Signer: key, Registry: client}
	first, err := publish.Publish(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if first.Unchanged || !first.Signed || first.Metadata.Generation != 1 || first.Metadata.Path != "fleet" ||
		first.Metadata.Revision != "main@sha1:"+rev.Commit {
		t.Fatalf("first publish = %+v", first)
	}
	reg.Reset()
	second, err := publish.Publish(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Unchanged || second.Signed || second.Reference != first.Reference {
		t.Fatalf("second publish = %+v, want unchanged %s", second, first.Reference)
	}
	for _, req := range reg.Recorded() {
		if !strings.HasPrefix(req, "GET ") && !strings.HasPrefix(req, "HEAD ") {
			t.Fatalf("publishing the same commit again wrote to the registry: %q", reg.Recorded())
		}
	}
	// Packing is deterministic too: a fresh tag gets the same digest.
	in.Target = "oci://" + reg.Host + "/ops/fleet:again"
	third, err := publish.Publish(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if third.Reference != first.Reference || third.Signed {
		t.Fatalf("publish to a new tag = %+v, want the same digest %s, already signed", third, first.Reference)
	}
}
