//go:build !containers_image_openpgp

package hostpolicy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/policy/hostpolicy"
)

// Built without containers_image_openpgp, a host with a policy.json is
// never answered "allowed": the policy could not be evaluated.
func TestWithoutTheBuildTagAHostPolicyFailsClosed(t *testing.T) {
	root := t.TempDir()
	t.Setenv("CONTAINERS_POLICY_JSON", "")
	ref := "registry.example.com/os@sha256:" + strings.Repeat("a", 64)
	c, err := hostpolicy.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Check(context.Background(), ref); err != nil || !v.Allowed || v.PolicyFile != "" {
		t.Fatalf("no policy.json: %+v, %v; want allowed, nothing checked", v, err)
	}
	file := filepath.Join(root, "etc/containers/policy.json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := c.Check(context.Background(), ref)
	if err == nil || v != nil || !strings.Contains(err.Error(), "-tags containers_image_openpgp") || !strings.Contains(err.Error(), file) {
		t.Fatalf("policy.json without the build tag: %+v, %v; want an error naming the file and the fix", v, err)
	}
}
