package policy_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/signer"
)

func newVerifier(t testing.TB, opts ...policy.Option) *policy.Verifier {
	t.Helper()
	v, err := policy.NewVerifier(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sign(t testing.TB, s *signer.Signer, ref string, opts ...signer.Option) {
	t.Helper()
	if err := s.Sign(t.Context(), ref, opts...); err != nil {
		t.Fatal(err)
	}
}

func signBundle(t testing.TB, s *signer.Signer, ref string, opts ...signer.Option) {
	t.Helper()
	if err := s.SignBundle(t.Context(), ref, opts...); err != nil {
		t.Fatal(err)
	}
}

// wantRefused checks that err is a refusal with reason, matching the
// reason's sentinel, and returns its message.
func wantRefused(t *testing.T, err error, reason policy.Reason) string {
	t.Helper()
	var re *policy.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v (%T), want a refusal %q", err, err, reason)
	}
	if re.Reason != reason {
		t.Fatalf("refused with %q, want %q: %v", re.Reason, reason, err)
	}
	sentinel := map[policy.Reason]error{
		policy.ReasonNoSignature: policy.ErrNoSignature, policy.ReasonBadSignature: policy.ErrBadSignature,
		policy.ReasonWrongDigest: policy.ErrWrongDigest, policy.ReasonWrongIdentity: policy.ErrWrongIdentity,
		policy.ReasonRegistryNotAllowed: policy.ErrRegistryNotAllowed, policy.ReasonMalformedSignature: policy.ErrMalformedSignature,
	}[reason]
	if !errors.Is(err, sentinel) {
		t.Fatalf("errors.Is(err, sentinel for %q) is false", reason)
	}
	t.Log(err.Error())
	return err.Error()
}

func TestCosignSignatureAcceptedAndNamesTheKey(t *testing.T) {
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	s := newSigner(t)
	sign(t, s, ref)
	kf := keyFile(t, s, "fleet.pub")
	v := newVerifier(t, policy.WithKeyFiles(kf))

	verdict, err := v.Verify(t.Context(), newClient(t), ref)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	repo, digest, _ := strings.Cut(ref, "@")
	if verdict.Reference != ref || verdict.Digest != digest || !verdict.Signed || verdict.Format != policy.FormatCosign ||
		verdict.KeyFile != kf || !strings.HasPrefix(verdict.KeyID, "sha256:") || verdict.Identity != repo {
		t.Fatalf("verdict = %+v", verdict)
	}
	out := verdict.String()
	for _, want := range []string{ref, kf, "cosign-simplesigning", "verdict:  accepted"} {
		if !strings.Contains(out, want) {
			t.Errorf("verdict text lacks %q:\n%s", want, out)
		}
	}
}

func TestCosignSignatureRefusals(t *testing.T) {
	trusted := newSigner(t)
	other := newSigner(t)
	tr := newTestRegistry(t, true)
	otherDigestRef := push(tr, "os/base", "old")
	_, otherDigest, _ := strings.Cut(otherDigestRef, "@")

	cases := []struct {
		name   string
		setup  func(ref string)
		reason policy.Reason
		detail string
	}{
		{"unsigned", func(string) {}, policy.ReasonNoSignature, ".sig"},
		{"wrong key", func(ref string) { sign(t, other, ref) }, policy.ReasonBadSignature, "does not verify with any trusted key"},
		{"payload for another digest", func(ref string) { sign(t, trusted, ref, signer.WithSignedDigest(otherDigest)) },
			policy.ReasonWrongDigest, "for digest " + otherDigest},
		{"payload for another repository", func(ref string) { sign(t, trusted, ref, signer.WithIdentity(tr.Host+"/os/other")) },
			policy.ReasonWrongIdentity, "for repository " + tr.Host + "/os/other"},
		{"same path on another registry", func(ref string) { sign(t, trusted, ref, signer.WithIdentity("registry.example.com/os/base")) },
			policy.ReasonWrongIdentity, "registry.example.com/os/base"},
		{"garbage annotation", func(ref string) { sign(t, trusted, ref, signer.WithGarbageSignature()) },
			policy.ReasonMalformedSignature, "not base64"},
		{"tampered payload", func(ref string) { sign(t, trusted, ref, signer.WithTamperedPayload()) },
			policy.ReasonBadSignature, "does not verify"},
	}
	v := newVerifier(t, policy.WithKeys(trusted.PublicKey()), policy.WithBundles(false))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := push(tr, "os/base", "case"+string(rune('a'+i)))
			tc.setup(ref)
			_, err := v.Verify(t.Context(), newClient(t), ref)
			msg := wantRefused(t, err, tc.reason)
			if !strings.Contains(msg, tc.detail) {
				t.Fatalf("refusal should explain %q: %s", tc.detail, msg)
			}
		})
	}
}

func TestRotationAnyTrustedKeyMaySign(t *testing.T) {
	oldKey, newKey := newSigner(t), newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, oldKey, ref)
	newPath, oldPath := keyFile(t, newKey, "new.pub"), keyFile(t, oldKey, "old.pub")
	v := newVerifier(t, policy.WithKeyFiles(newPath, oldPath))
	verdict, err := v.Verify(t.Context(), newClient(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	if verdict.KeyFile != oldPath {
		t.Fatalf("verdict names key %s, want the one that signed (%s)", verdict.KeyFile, oldPath)
	}
}

func TestOneGoodSignatureAmongBadOnesIsEnough(t *testing.T) {
	trusted, stranger := newSigner(t), newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, stranger, ref)                                      // layer 1: unknown key
	sign(t, trusted, ref, signer.WithIdentity(tr.Host+"/os/x")) // layer 2: wrong repository
	sign(t, trusted, ref)                                       // layer 3: good
	v := newVerifier(t, policy.WithKeys(trusted.PublicKey()))
	if _, err := v.Verify(t.Context(), newClient(t), ref); err != nil {
		t.Fatalf("a valid signature among invalid ones must be accepted: %v", err)
	}

	// Without the good layer, the most telling failure is reported first
	// and every layer is explained.
	ref2 := push(tr, "os/base", "other")
	sign(t, stranger, ref2)
	sign(t, trusted, ref2, signer.WithIdentity(tr.Host+"/os/x"))
	_, err := v.Verify(t.Context(), newClient(t), ref2)
	msg := wantRefused(t, err, policy.ReasonWrongIdentity)
	if !strings.Contains(msg, "cosign signature 1: does not verify") || !strings.Contains(msg, "cosign signature 2: signed by") {
		t.Fatalf("refusal should explain each signature: %s", msg)
	}
}

func TestSignedIdentityTagIsIgnored(t *testing.T) {
	// skopeo and podman write the full reference with a tag; matchRepository
	// compares repositories only.
	s := newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, s, ref, signer.WithIdentity(tr.Host+"/os/base:v1"))
	v := newVerifier(t, policy.WithKeys(s.PublicKey()))
	verdict, err := v.Verify(t.Context(), newClient(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	if verdict.Identity != tr.Host+"/os/base:v1" {
		t.Fatalf("identity = %q", verdict.Identity)
	}
}

func TestDockerMediaTypeSignatureManifest(t *testing.T) {
	s := newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, s, ref, signer.WithDockerMediaTypes())
	v := newVerifier(t, policy.WithKeys(s.PublicKey()))
	if _, err := v.Verify(t.Context(), newClient(t), ref); err != nil {
		t.Fatalf("COSIGN_DOCKER_MEDIA_TYPES=1 signatures must be accepted: %v", err)
	}
}

func TestIndexSignatureCoversTheIndexDigestOnly(t *testing.T) {
	s := newSigner(t)
	tr := newTestRegistry(t, true)
	idxRef, amd64Ref := pushIndex(tr, "os/multi", "stable")
	sign(t, s, idxRef) // what `cosign sign repo:tag` does for a multi-arch image
	v := newVerifier(t, policy.WithKeys(s.PublicKey()))
	c := newClient(t)
	if _, err := v.Verify(t.Context(), c, idxRef); err != nil {
		t.Fatalf("the pinned index digest is signed: %v", err)
	}
	// bootsync pins and verifies the index digest; the per-platform
	// manifest has no signature of its own.
	_, err := v.Verify(t.Context(), c, amd64Ref)
	wantRefused(t, err, policy.ReasonNoSignature)
}

func TestVerifyRequiresADigestReference(t *testing.T) {
	tr := newTestRegistry(t, true)
	push(tr, "os/base", "stable")
	v := newVerifier(t, policy.WithKeys(newSigner(t).PublicKey()))
	tr.Reset()
	_, err := v.Verify(t.Context(), newClient(t), tr.Host+"/os/base:stable")
	if err == nil || !strings.Contains(err.Error(), "digest reference is required") {
		t.Fatalf("Verify on a tag = %v; it must refuse to re-resolve", err)
	}
	if n := len(tr.Recorded()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestResolveAndVerifyBindsTheDigest(t *testing.T) {
	s := newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, s, ref)
	v := newVerifier(t, policy.WithKeys(s.PublicKey()))
	c := newClient(t)
	verdict, err := v.ResolveAndVerify(t.Context(), c, tr.Host+"/os/base:stable", "")
	if err != nil {
		t.Fatal(err)
	}
	if verdict.Reference != ref {
		t.Fatalf("verdict reference = %s, want the resolved %s", verdict.Reference, ref)
	}
	// The tag now points at an unsigned image: resolving again is refused,
	// and the earlier verdict still names the signed digest.
	push(tr, "os/base", "stable")
	_, err = v.ResolveAndVerify(t.Context(), c, tr.Host+"/os/base:stable", "")
	wantRefused(t, err, policy.ReasonNoSignature)
	// With the lock's digest, the tag is not resolved at all.
	_, digest, _ := strings.Cut(ref, "@")
	tr.Reset()
	verdict, err = v.ResolveAndVerify(t.Context(), c, tr.Host+"/os/base:stable", digest)
	if err != nil || verdict.Reference != ref {
		t.Fatalf("locked: %+v, %v", verdict, err)
	}
	for _, r := range tr.Recorded() {
		if strings.HasSuffix(r, "/manifests/stable") {
			t.Fatalf("the locked tag was resolved: %q", tr.Recorded())
		}
	}
}

func TestRegistryFailureIsNotARefusal(t *testing.T) {
	s := newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, s, ref)
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".sig") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	v := newVerifier(t, policy.WithKeys(s.PublicKey()))
	_, err := v.Verify(t.Context(), newClient(t), ref)
	var re *policy.RefusedError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("err = %v; an outage must not look like a verdict", err)
	}
	if registry.ReasonOf(err) != registry.ReasonUnavailable {
		t.Fatalf("reason = %q, want %q: %v", registry.ReasonOf(err), registry.ReasonUnavailable, err)
	}
}

func TestAllowListsRefuseBeforeAnyRequest(t *testing.T) {
	s := newSigner(t)
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	sign(t, s, ref)
	c := newClient(t)
	cases := []struct {
		name    string
		host    []string
		fleet   []string
		allowed bool
	}{
		{"no lists", nil, nil, true},
		{"host prefix", []string{tr.Host + "/os"}, nil, true},
		{"exact repository", []string{tr.Host + "/os/base"}, nil, true},
		{"registry host", []string{tr.Host}, nil, true},
		{"prefix is a path boundary", []string{tr.Host + "/o"}, nil, false},
		{"another port", []string{"127.0.0.1:1"}, nil, false},
		{"fleet tightens", []string{tr.Host}, []string{tr.Host + "/apps"}, false},
		{"both allow", []string{tr.Host}, []string{tr.Host + "/os/"}, true},
		{"fleet alone", nil, []string{"registry.example.com/os"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, policy.WithKeys(s.PublicKey()), policy.WithAllowedRegistries(tc.host...), policy.WithFleetPolicy(tc.fleet, false))
			tr.Reset()
			_, err := v.Verify(t.Context(), c, ref)
			if tc.allowed {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantRefused(t, err, policy.ReasonRegistryNotAllowed)
			_, err = v.ResolveAndVerify(t.Context(), c, tr.Host+"/os/base:stable", "")
			wantRefused(t, err, policy.ReasonRegistryNotAllowed)
			if got := tr.Recorded(); len(got) != 0 {
				t.Fatalf("requests before refusing a registry: %q", got)
			}
		})
	}
}

func TestSignaturesNotRequired(t *testing.T) {
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	v := newVerifier(t, policy.WithRequireSignatures(false))
	tr.Reset()
	verdict, err := v.Verify(t.Context(), newClient(t), ref)
	if err != nil || verdict.Signed {
		t.Fatalf("verdict %+v, err %v; want accepted unsigned", verdict, err)
	}
	if n := len(tr.Recorded()); n != 0 {
		t.Fatalf("%d requests although nothing is checked", n)
	}
	if !strings.Contains(verdict.String(), "not required") {
		t.Fatalf("verdict text: %s", verdict)
	}

	// The fleet can require signatures even when the host does not.
	s := newSigner(t)
	v = newVerifier(t, policy.WithRequireSignatures(false), policy.WithKeys(s.PublicKey()), policy.WithFleetPolicy(nil, true))
	_, err = v.Verify(t.Context(), newClient(t), ref)
	wantRefused(t, err, policy.ReasonNoSignature)
}

func TestNewVerifierValidates(t *testing.T) {
	if _, err := policy.NewVerifier(); err == nil || !strings.Contains(err.Error(), "no trusted signing key") {
		t.Fatalf("requiring signatures without keys: %v", err)
	}
	if _, err := policy.NewVerifier(policy.WithRequireSignatures(false), policy.WithFleetPolicy(nil, true)); err == nil {
		t.Fatal("a fleet that requires signatures needs a trusted key too")
	}
	missing := filepath.Join(t.TempDir(), "missing.pub")
	if _, err := policy.NewVerifier(policy.WithKeyFiles(missing)); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing key file: %v", err)
	}
	notKey := filepath.Join(t.TempDir(), "garbage.pub")
	if err := os.WriteFile(notKey, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.NewVerifier(policy.WithKeyFiles(notKey)); err == nil || !strings.Contains(err.Error(), notKey) {
		t.Fatalf("garbage key file: %v", err)
	}
	for _, bad := range []string{"https://registry.example.com/os", "registry.example.com/os:tag@sha256:00", "*.example.com", ""} {
		if _, err := policy.NewVerifier(policy.WithRequireSignatures(false), policy.WithAllowedRegistries(bad)); err == nil {
			t.Errorf("allow-list entry %q accepted", bad)
		}
	}
}
