package hostspec

import (
	"context"
	"os"
	"testing"
)

// TestExamplesValidate keeps the documented example and the repository's
// examples/fleet valid: every declared host resolves and renders.
func TestExamplesValidate(t *testing.T) {
	r := mustLoad(t, exampleRepo(), WithRevision("abc123"))
	if err := r.Validate(context.Background()); err != nil {
		t.Fatalf("schema example: %v", err)
	}
	ex := mustLoad(t, os.DirFS("../examples/fleet"))
	if len(ex.HostNames()) == 0 {
		t.Fatal("examples/fleet declares no hosts")
	}
	if err := ex.Validate(context.Background()); err != nil {
		t.Fatalf("examples/fleet: %v", err)
	}
}
