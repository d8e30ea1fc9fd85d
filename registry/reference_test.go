package registry_test

import (
	"testing"

	"github.com/bootsync/bootsync/registry"
)

// A transport prefix is not a registry: go-containerregistry alone reads
// docker://registry.example.com/x:1 as a registry named "docker:", which
// `bootsync image verify` then contacted. Refused as the fleet repository's
// references are (hostspec.ParseImageReference).
func TestParseReferenceRefusesTransports(t *testing.T) {
	for _, ref := range []string{"docker://registry.example.com/os/base:1", "docker:registry.example.com/os/base:1",
		"containers-storage:registry.example.com/os/base:1"} {
		_, err := registry.ParseReference(ref)
		if registry.ReasonOf(err) != registry.ReasonInvalidReference {
			t.Errorf("ParseReference(%q) = %v, want an invalid-reference error", ref, err)
		}
	}
}
