package policy_test

import (
	"strings"
	"testing"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/test/signer"
)

func TestSigstoreBundleAccepted(t *testing.T) {
	for _, api := range []bool{true, false} {
		name := "referrers API"
		if !api {
			name = "referrers tag fallback"
		}
		t.Run(name, func(t *testing.T) {
			s := newSigner(t)
			tr := newTestRegistry(t, api)
			ref := push(tr, "os/base", "stable")
			signBundle(t, s, ref)
			v := newVerifier(t, policy.WithKeys(s.PublicKey()))
			verdict, err := v.Verify(t.Context(), newClient(t), ref)
			if err != nil {
				t.Fatal(err)
			}
			if verdict.Format != policy.FormatBundle || verdict.Identity != "" || !verdict.Signed {
				t.Fatalf("verdict = %+v", verdict)
			}
			if !strings.Contains(verdict.String(), "bootc's own containers-policy cannot verify") {
				t.Fatalf("the verdict must warn that bootc cannot check bundles:\n%s", verdict)
			}
			// Hosts that also enforce bootc's policy turn bundles off.
			strict := newVerifier(t, policy.WithKeys(s.PublicKey()), policy.WithBundles(false))
			_, err = strict.Verify(t.Context(), newClient(t), ref)
			wantRefused(t, err, policy.ReasonNoSignature)
		})
	}
}

func TestSigstoreBundleRefusals(t *testing.T) {
	trusted, other := newSigner(t), newSigner(t)
	tr := newTestRegistry(t, true)
	_, otherDigest, _ := strings.Cut(push(tr, "os/base", "old"), "@")
	cases := []struct {
		name   string
		setup  func(ref string)
		reason policy.Reason
		detail string
	}{
		{"wrong key", func(ref string) { signBundle(t, other, ref) }, policy.ReasonBadSignature, "does not verify with any trusted key"},
		{"statement for another digest", func(ref string) { signBundle(t, trusted, ref, signer.WithSignedDigest(otherDigest)) },
			policy.ReasonWrongDigest, otherDigest},
		{"not an image signature", func(ref string) {
			signBundle(t, trusted, ref, signer.WithPredicateType("https://spdx.dev/Document"))
		}, policy.ReasonMalformedSignature, "https://spdx.dev/Document"},
		{"garbage bundle", func(ref string) { signBundle(t, trusted, ref, signer.WithGarbageSignature()) },
			policy.ReasonMalformedSignature, "not a Sigstore bundle"},
	}
	v := newVerifier(t, policy.WithKeys(trusted.PublicKey()))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := push(tr, "os/base", "bundle"+string(rune('a'+i)))
			tc.setup(ref)
			_, err := v.Verify(t.Context(), newClient(t), ref)
			msg := wantRefused(t, err, tc.reason)
			if !strings.Contains(msg, tc.detail) {
				t.Fatalf("refusal should mention %q: %s", tc.detail, msg)
			}
		})
	}
}

func TestNoSignatureMentionsBothFormats(t *testing.T) {
	tr := newTestRegistry(t, true)
	ref := push(tr, "os/base", "stable")
	v := newVerifier(t, policy.WithKeys(newSigner(t).PublicKey()))
	_, err := v.Verify(t.Context(), newClient(t), ref)
	msg := wantRefused(t, err, policy.ReasonNoSignature)
	if !strings.Contains(msg, ".sig") || !strings.Contains(msg, "Sigstore bundle") {
		t.Fatalf("refusal should say what was looked for: %s", msg)
	}
}
