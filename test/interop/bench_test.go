package interop

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
	"github.com/bootsync/bootsync/test/cosigntool"
	"github.com/bootsync/bootsync/test/registryserver"
)

// BenchmarkVerifyRealRegistry measures bootsync verifying an image signed by
// the real cosign (v2 tag-based, v3 bundle) in the real distribution
// registry, with a warm client, and reports registry requests per
// verification. Compare with `cosign verify --key` on the same image.
func BenchmarkVerifyRealRegistry(b *testing.B) {
	for _, version := range []string{cosigntool.V2, cosigntool.V3} {
		b.Run("cosign-"+version, func(b *testing.B) {
			c := cosigntool.Require(b, version)
			reg := registryserver.New(b)
			key, pub, err := c.GenerateKeyPair(b.Context(), b.TempDir(), "cosign", password)
			if err != nil {
				b.Fatal(err)
			}
			img, err := random.Image(512, 2)
			if err != nil {
				b.Fatal(err)
			}
			tag, _ := name.NewTag(reg.Addr()+"/demo/bench:v1", name.StrictValidation)
			if err := remote.Write(tag, img); err != nil {
				b.Fatal(err)
			}
			d, _ := img.Digest()
			ref := reg.Addr() + "/demo/bench@" + d.String()
			if err := c.Sign(b.Context(), key, password, ref, cosigntool.Default); err != nil {
				b.Fatal(err)
			}
			v, err := policy.NewVerifier(policy.WithKeyFiles(pub))
			if err != nil {
				b.Fatal(err)
			}
			client, err := registry.New(registry.WithAuthRoot(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := v.Verify(b.Context(), client, ref); err != nil {
				b.Fatal(err)
			}
			reg.Reset()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), client, ref); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(reg.Requests()))/float64(b.N), "requests/op")
		})
	}
}
