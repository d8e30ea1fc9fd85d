package registry_test

import (
	"testing"
)

// BenchmarkResolveTag measures a warm tag resolution against the in-process
// registry and reports registry requests per resolution.
func BenchmarkResolveTag(b *testing.B) {
	tr := newTestRegistry(b)
	tr.pushImage("os/base", "stable")
	c := newClient(b)
	ref := tr.host + "/os/base:stable"
	if _, err := c.Resolve(b.Context(), ref); err != nil {
		b.Fatal(err)
	}
	tr.reset()
	for b.Loop() {
		if _, err := c.Resolve(b.Context(), ref); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tr.recorded()))/float64(b.N), "requests/op")
}

// BenchmarkResolvePinned is the no-op resolution of a digest-pinned or
// locked image: no request at all.
func BenchmarkResolvePinned(b *testing.B) {
	tr := newTestRegistry(b)
	digest, _ := tr.pushImage("os/base", "stable")
	c := newClient(b)
	ref := tr.host + "/os/base:stable"
	tr.reset()
	for b.Loop() {
		if _, err := c.ResolvePinned(b.Context(), ref, digest); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tr.recorded()))/float64(b.N), "requests/op")
}
