//go:build containers_image_openpgp

package hostpolicy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/policy/hostpolicy"
	"github.com/bootsync/bootsync/test/registrytest"
	"github.com/bootsync/bootsync/test/signer"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// SigstoreHost writes a bootc host root whose policy.json requires
// sigstoreSigned with the signer's key for repo, and whose registries.d
// turns on sigstore attachments for it (what examples/bootc ships).
func sigstoreHost(t *testing.T, s *signer.Signer, repo string) string {
	t.Helper()
	root := t.TempDir()
	key := filepath.Join(root, "etc/pki/containers/fleet.pub")
	if err := os.MkdirAll(filepath.Dir(key), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePublicKey(key); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/containers/policy.json"), `{
  "default": [{"type": "reject"}],
  "transports": {"docker": {"`+repo+`": [
    {"type": "sigstoreSigned", "keyPath": "`+key+`", "signedIdentity": {"type": "matchRepository"}}
  ]}}
}`)
	writeFile(t, filepath.Join(root, "etc/containers/registries.d/os.yaml"), "docker:\n  "+repo+":\n    use-sigstore-attachments: true\n")
	return root
}

func TestHostPolicyTagSignatureAcceptedBundleOnlyRefused(t *testing.T) {
	reg := registrytest.New(t, true)
	s, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	repo := reg.Host + "/os/base"
	root := sigstoreHost(t, s, repo)
	c, err := hostpolicy.New(root, reg.Host)
	if err != nil {
		t.Fatal(err)
	}

	tagSigned, _ := reg.PushRandom("os/base", "tag-signed")
	if err := s.Sign(t.Context(), repo+"@"+tagSigned); err != nil {
		t.Fatal(err)
	}
	v, err := c.Check(t.Context(), repo+"@"+tagSigned)
	if err != nil || !v.Allowed || v.PolicyFile != filepath.Join(root, "etc/containers/policy.json") {
		t.Fatalf("an image signed with the policy's key in cosign's tag format: %+v, %v", v, err)
	}

	bundleOnly, _ := reg.PushRandom("os/base", "bundle-only")
	if err := s.SignBundle(t.Context(), repo+"@"+bundleOnly); err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(t.Context(), repo+"@"+bundleOnly)
	var refused *policy.RefusedError
	if !errors.As(err, &refused) || refused.Reason != policy.ReasonHostPolicy || !errors.Is(err, policy.ErrHostPolicy) {
		t.Fatalf("an image signed only with a bundle: %v, want a host-policy refusal", err)
	}
	if !strings.Contains(refused.Detail, "policy.json") || !strings.Contains(refused.Detail, "signature") {
		t.Fatalf("the refusal does not name the policy file and containers/image's reason: %s", refused.Detail)
	}

	other, err := signer.New()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := reg.PushRandom("os/base", "other-key")
	if err := other.Sign(t.Context(), repo+"@"+otherKey); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(t.Context(), repo+"@"+otherKey); !errors.Is(err, policy.ErrHostPolicy) {
		t.Fatalf("an image signed by another key: %v, want a host-policy refusal", err)
	}
}

func TestHostPolicyAbsentOrBroken(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no user policy.json
	reg := registrytest.New(t, true)
	d, _ := reg.PushRandom("os/base", "v1")
	ref := reg.Host + "/os/base@" + d

	c, err := hostpolicy.New(t.TempDir(), reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Check(t.Context(), ref); err != nil || v.PolicyFile != "" || !v.Allowed {
		t.Fatalf("a host without policy.json: %+v, %v (nothing to evaluate)", v, err)
	}

	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/containers/policy.json"), `{"default": [{"type": "insecureAcceptAnything"}]}`)
	c, _ = hostpolicy.New(root, reg.Host)
	if v, err := c.Check(t.Context(), ref); err != nil || !v.Allowed {
		t.Fatalf("an accept-anything policy: %+v, %v", v, err)
	}
	before := c.Fingerprint()
	writeFile(t, filepath.Join(root, "etc/containers/policy.json"), `{"default": [{"type": "reject"}]}`)
	if c.Fingerprint() == before {
		t.Fatal("the fingerprint did not change with the policy file")
	}
	if _, err := c.Check(t.Context(), ref); !errors.Is(err, policy.ErrHostPolicy) {
		t.Fatalf("a reject policy: %v", err)
	}
	writeFile(t, filepath.Join(root, "etc/containers/policy.json"), `{"default": [{"type": "sigstoreSigned"}]}`)
	if _, err := c.Check(t.Context(), ref); !errors.Is(err, policy.ErrHostPolicy) || !strings.Contains(err.Error(), "bootc cannot use it") {
		t.Fatalf("an invalid policy: %v", err)
	}
}
