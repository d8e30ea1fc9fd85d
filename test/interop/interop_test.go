// Package interop checks bootsync against tools nobody here wrote: images in
// the real CNCF distribution registry (Debian's docker-registry), signed by
// the real cosign v2.6.5 (tag-based format) and v3.1.3 (Sigstore bundles),
// verified by bootsync's policy; and signatures written by the project's
// test signer, verified by the real `cosign verify`. With CI=true a missing
// tool fails the tests instead of skipping them.
package interop

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/cosigntool"
	"github.com/bootsync/bootsync/test/registryserver"
	"github.com/bootsync/bootsync/test/signer"
)

const password = "interop-test-pass"

type env struct {
	t      *testing.T
	reg    *registryserver.Server
	cos2   *cosigntool.Cosign
	cos3   *cosigntool.Cosign
	key    string // cosign.key made by `cosign generate-key-pair`
	pub    string // its cosign.pub
	other  string // another cosign key pair: the attacker's
	otherP string
	client *registry.Client
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{t: t}
	e.cos2 = cosigntool.Require(t, cosigntool.V2)
	e.cos3 = cosigntool.Require(t, cosigntool.V3)
	e.reg = registryserver.New(t)
	dir := t.TempDir()
	var err error
	if e.key, e.pub, err = e.cos2.GenerateKeyPair(t.Context(), dir, "cosign", password); err != nil {
		t.Fatal(err)
	}
	if e.other, e.otherP, err = e.cos2.GenerateKeyPair(t.Context(), dir, "other", password); err != nil {
		t.Fatal(err)
	}
	if e.client, err = registry.New(registry.WithAuthRoot(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	return e
}

// push writes a fresh random image to repo:tag and returns repo@digest.
func (e *env) push(repo, tag string) string {
	e.t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := name.NewTag(e.reg.Addr()+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(e.t.Context())); err != nil {
		e.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		e.t.Fatal(err)
	}
	return e.reg.Addr() + "/" + repo + "@" + d.String()
}

// copyTo copies the manifest at src (any reference) to dst, blobs included:
// how an attacker replays a signature into another repository.
func (e *env) copyTo(src, dst string) {
	e.t.Helper()
	s, err := name.ParseReference(src)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := name.ParseReference(dst)
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := remote.Image(s, remote.WithContext(e.t.Context()))
	if err != nil {
		e.t.Fatalf("read %s: %v", src, err)
	}
	if err := remote.Write(d, img, remote.WithContext(e.t.Context())); err != nil {
		e.t.Fatalf("copy to %s: %v", dst, err)
	}
}

func (e *env) verifier(opts ...policy.Option) *policy.Verifier {
	e.t.Helper()
	v, err := policy.NewVerifier(append([]policy.Option{policy.WithKeyFiles(e.pub), policy.WithAllowedRegistries(e.reg.Addr() + "/demo")}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) sign(c *cosigntool.Cosign, key, ref string, f cosigntool.Format) {
	e.t.Helper()
	if err := c.Sign(e.t.Context(), key, password, ref, f); err != nil {
		e.t.Fatal(err)
	}
}

// acceptedSigned pushes an image to repo, signs it with e.key through c in
// format f, and returns its reference and v's verdict, failing unless v
// accepts it.
func (e *env) acceptedSigned(t *testing.T, v *policy.Verifier, repo string, c *cosigntool.Cosign, f cosigntool.Format) (string, *policy.Verdict) {
	t.Helper()
	ref := e.push(repo, "v1")
	e.sign(c, e.key, ref, f)
	verdict, err := v.Verify(t.Context(), e.client, ref)
	if err != nil {
		t.Fatal(err)
	}
	return ref, verdict
}

func wantRefused(t *testing.T, err error, reason policy.Reason) {
	t.Helper()
	var re *policy.RefusedError
	if !errors.As(err, &re) || re.Reason != reason {
		t.Fatalf("error = %v, want refusal %q", err, reason)
	}
}

func TestBootsyncVerifiesRealCosignSignatures(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	v := e.verifier()

	t.Run("cosign v2 default format", func(t *testing.T) {
		ref, verdict := e.acceptedSigned(t, v, "demo/v2", e.cos2, cosigntool.Default)
		repo, _, _ := strings.Cut(ref, "@")
		if verdict.Format != policy.FormatCosign || verdict.KeyFile != e.pub || verdict.Identity != repo {
			t.Fatalf("verdict = %+v", verdict)
		}
	})

	t.Run("cosign v3 default bundle format", func(t *testing.T) {
		ref, verdict := e.acceptedSigned(t, v, "demo/v3", e.cos3, cosigntool.Default)
		if verdict.Format != policy.FormatBundle || verdict.KeyFile != e.pub {
			t.Fatalf("verdict = %+v", verdict)
		}
		// A host that also enforces bootc's containers-policy must not
		// accept what bootc cannot check.
		_, err := e.verifier(policy.WithBundles(false)).Verify(ctx, e.client, ref)
		wantRefused(t, err, policy.ReasonNoSignature)
	})

	t.Run("cosign v3 --new-bundle-format=false", func(t *testing.T) {
		_, verdict := e.acceptedSigned(t, v, "demo/v3legacy", e.cos3, cosigntool.Legacy)
		if verdict.Format != policy.FormatCosign {
			t.Fatalf("verdict = %+v", verdict)
		}
	})

	t.Run("unsigned", func(t *testing.T) {
		_, err := v.Verify(ctx, e.client, e.push("demo/unsigned", "v1"))
		wantRefused(t, err, policy.ReasonNoSignature)
	})

	t.Run("signed by another key", func(t *testing.T) {
		for _, c := range []*cosigntool.Cosign{e.cos2, e.cos3} {
			ref := e.push("demo/otherkey-"+c.Version, "v1")
			e.sign(c, e.other, ref, cosigntool.Default)
			_, err := v.Verify(ctx, e.client, ref)
			wantRefused(t, err, policy.ReasonBadSignature)
			// ... and accepted by a host that trusts that key too (rotation).
			rotated := e.verifier(policy.WithKeyFiles(e.otherP))
			if verdict, err := rotated.Verify(ctx, e.client, ref); err != nil || verdict.KeyFile != e.otherP {
				t.Fatalf("%s: with both keys trusted: %+v, %v", c.Version, verdict, err)
			}
		}
	})

	t.Run("signed for another repository", func(t *testing.T) {
		// The same image in two repositories; cosign signs it in one, and
		// the signature is replayed into the other.
		signed := e.push("demo/elsewhere", "v1")
		_, digest, _ := strings.Cut(signed, "@")
		e.sign(e.cos2, e.key, signed, cosigntool.Default)
		victim := e.reg.Addr() + "/demo/victim@" + digest
		e.copyTo(signed, e.reg.Addr()+"/demo/victim:v1")
		sigTag := "sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"
		e.copyTo(e.reg.Addr()+"/demo/elsewhere:"+sigTag, e.reg.Addr()+"/demo/victim:"+sigTag)

		if _, err := v.Verify(ctx, e.client, signed); err != nil {
			t.Fatalf("the original is accepted: %v", err)
		}
		_, err := v.Verify(ctx, e.client, victim)
		wantRefused(t, err, policy.ReasonWrongIdentity)
	})

	t.Run("outside the allowed registries", func(t *testing.T) {
		ref := e.push("apps/web", "v1")
		e.sign(e.cos2, e.key, ref, cosigntool.Default)
		e.reg.Reset()
		_, err := v.Verify(ctx, e.client, ref)
		wantRefused(t, err, policy.ReasonRegistryNotAllowed)
		if n := len(e.reg.Requests()); n != 0 {
			t.Fatalf("%d registry requests before refusing", n)
		}
	})
}

func TestRealCosignVerifiesProjectSigner(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "signer.pub")
	if err := s.WritePublicKey(pub); err != nil {
		t.Fatal(err)
	}

	t.Run("tag-based", func(t *testing.T) {
		ref := e.push("demo/ours", "v1")
		if err := s.Sign(ctx, ref); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*cosigntool.Cosign{e.cos2, e.cos3} {
			if out, err := c.Verify(ctx, pub, ref); err != nil {
				t.Fatalf("cosign %s verify refused the project's signature: %v", c.Version, err)
			} else if !strings.Contains(string(out), `"docker-manifest-digest"`) {
				t.Fatalf("cosign %s verify printed no payload:\n%s", c.Version, out)
			}
			// The check is real: another key is refused.
			if _, err := c.Verify(ctx, e.pub, ref); err == nil {
				t.Fatalf("cosign %s verify accepted the signature with an unrelated key", c.Version)
			}
		}
	})

	t.Run("bundle", func(t *testing.T) {
		ref := e.push("demo/oursbundle", "v1")
		if err := s.SignBundle(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cos3.Verify(ctx, pub, ref); err != nil {
			t.Fatalf("cosign v3 verify refused the project's bundle: %v", err)
		}
		if _, err := e.cos3.Verify(ctx, e.pub, ref); err == nil {
			t.Fatal("cosign v3 verify accepted the bundle with an unrelated key")
		}
	})
}

func TestRequestsPerResolutionAtTheRealRegistry(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	ref := e.push("demo/count", "stable")
	repo, digest, _ := strings.Cut(ref, "@")
	tagRef := repo + ":stable"
	if _, err := e.client.Resolve(ctx, tagRef); err != nil { // first contact: handshake + HEAD
		t.Fatal(err)
	}

	e.reg.Reset()
	res, err := e.client.Resolve(ctx, tagRef)
	if err != nil || res.Digest != digest {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	if got := e.reg.Requests(); len(got) != 1 || got[0].Method != "HEAD" || got[0].Path != "/v2/demo/count/manifests/stable" {
		t.Fatalf("requests for a tag = %v, want exactly one HEAD of the manifest", got)
	}

	e.reg.Reset()
	if _, err := e.client.Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ResolvePinned(ctx, tagRef, digest); err != nil {
		t.Fatal(err)
	}
	if got := e.reg.Requests(); len(got) != 0 {
		t.Fatalf("requests for digest-pinned and locked resolutions = %v, want none", got)
	}

	// An outage is reported as such, and the client recovers.
	e.reg.Down()
	quick, err := registry.New(registry.WithAuthRoot(t.TempDir()),
		registry.WithRetry(registry.RetryPolicy{Max: 1, MinWait: 1, MaxWait: 1, MaxRetryAfter: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quick.Resolve(ctx, tagRef); registry.ReasonOf(err) != registry.ReasonUnavailable {
		t.Fatalf("resolve while the registry is down: %v, want reason unavailable", err)
	}
	if err := e.reg.Up(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Resolve(context.WithoutCancel(ctx), tagRef); err != nil {
		t.Fatalf("after the registry came back: %v", err)
	}
}
