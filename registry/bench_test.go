package registry_test

import (
	"testing"
)

// BenchmarkResolveTag measures a warm tag resolution against the in-process
// registry and reports registry requests per resolution.
func BenchmarkResolveTag(b *testing.B) {
	tr := newTestRegistry(b)
	tr.PushRandom("os/base", "stable")
	c := newClient(b)
	ref := tr.Host + "/os/base:stable"
	if _, err := c.Resolve(b.Context(), ref); err != nil {
		b.Fatal(err)
	}
	tr.Reset()
	for b.Loop() {
		if _, err := c.Resolve(b.Context(), ref); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tr.Recorded()))/float64(b.N), "requests/op")
}

// BenchmarkResolvePinned is the no-op resolution of a digest-pinned or
// locked image: no request at all.
func BenchmarkResolvePinned(b *testing.B) {
	tr := newTestRegistry(b)
	digest, _ := tr.PushRandom("os/base", "stable")
	c := newClient(b)
	ref := tr.Host + "/os/base:stable"
	tr.Reset()
	for b.Loop() {
		if _, err := c.ResolvePinned(b.Context(), ref, digest); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tr.Recorded()))/float64(b.N), "requests/op")
}
