package policy_test

import (
	"testing"

	"github.com/bootsync/bootsync/policy"
)

// BenchmarkVerify measures verifying one image's tag-based cosign signature
// against the in-process registry with a warm client (what the agent does
// each time a new digest appears), and reports registry requests per
// verification.
func BenchmarkVerify(b *testing.B) {
	benchmarkVerify(b, false)
}

// BenchmarkVerifyBundle is the same for a cosign v3 Sigstore bundle
// attached through the referrers API.
func BenchmarkVerifyBundle(b *testing.B) {
	benchmarkVerify(b, true)
}

func benchmarkVerify(b *testing.B, bundle bool) {
	s := newSigner(b)
	tr := newTestRegistry(b, true)
	ref := push(tr, "os/base", "stable")
	if bundle {
		signBundle(b, s, ref)
	} else {
		sign(b, s, ref)
	}
	v := newVerifier(b, policy.WithKeys(s.PublicKey(), newSigner(b).PublicKey()))
	c := newClient(b)
	if _, err := v.Verify(b.Context(), c, ref); err != nil { // warm the client
		b.Fatal(err)
	}
	tr.Reset()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), c, ref); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(tr.Recorded()))/float64(b.N), "requests/op")
}
