package ocisource_test

import (
	"strings"
	"testing"

	"github.com/bootsync/bootsync/ocisource"
)

// Media types that look like a fleet artifact's but are not exactly it
// (another version, a suffix, Flux's own, a Docker manifest) are refused,
// naming the field.
func TestLookAlikeMediaTypesAreRefused(t *testing.T) {
	annotations := `"annotations":{"dev.bootsync.fleet.commit":"` + strings.Repeat("a", 40) + `","dev.bootsync.fleet.generation":"1",` +
		`"dev.bootsync.fleet.commit-time":"2025-01-01T00:00:00Z","dev.bootsync.fleet.commit-signature":"unverified","dev.bootsync.fleet.path":".",` +
		`"org.opencontainers.image.created":"2025-01-01T00:00:00Z","org.opencontainers.image.revision":"sha1:x"}`
	manifest := func(mt, config, layer string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + mt + `","config":{"mediaType":"` + config + `","size":2,"digest":"sha256:` + strings.Repeat("0", 64) +
			`"},"layers":[{"mediaType":"` + layer + `","size":10,"digest":"sha256:` + strings.Repeat("1", 64) + `"}],` + annotations + `}`)
	}
	const oci = "application/vnd.oci.image.manifest.v1+json"
	if _, err := ocisource.ParseManifest(manifest(oci, ocisource.ConfigMediaType, ocisource.ContentMediaType)); err != nil {
		t.Fatalf("test setup: the genuine manifest is refused: %v", err)
	}
	for _, tc := range []struct{ manifest, config, layer, want string }{
		{oci, "application/vnd.bootsync.fleet.config.v2+json", ocisource.ContentMediaType, "config media type"},
		{oci, ocisource.ConfigMediaType + " ", ocisource.ContentMediaType, "config media type"},
		{oci, "application/vnd.cncf.flux.config.v1+json", ocisource.ContentMediaType, "config media type"},
		{oci, ocisource.ConfigMediaType, "application/vnd.bootsync.fleet.content.v1.tar", "layer media type"},
		{oci, ocisource.ConfigMediaType, "application/vnd.cncf.flux.content.v1.tar+gzip", "layer media type"},
		{oci, ocisource.ConfigMediaType, strings.ToUpper(ocisource.ContentMediaType), "layer media type"},
		{"application/vnd.docker.distribution.manifest.v2+json", ocisource.ConfigMediaType, ocisource.ContentMediaType, "manifest media type"},
	} {
		_, err := ocisource.ParseManifest(manifest(tc.manifest, tc.config, tc.layer))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("manifest %q config %q layer %q: %v, want an error about the %s", tc.manifest, tc.config, tc.layer, err, tc.want)
		}
	}
}
