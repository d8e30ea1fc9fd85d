package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bootsync/bootsync/policy"
)

// The fleet can tighten the host's trust (another allow-list, signatures
// required) but never loosen it.
func TestHostTrustVerifierTakesTheFleetPolicyAsATightening(t *testing.T) {
	tr := newTestRegistry(t, false)
	s := newSigner(t)
	ref := push(tr, "os/base", "v1")
	keyFile := filepath.Join(t.TempDir(), "cosign.pub")
	if err := s.WritePublicKey(keyFile); err != nil {
		t.Fatal(err)
	}
	host := policy.HostTrust{SigningKeys: []string{keyFile}, RequireSignatures: false, AllowedRegistries: []string{tr.Host + "/os"}}
	ctx := context.Background()

	v, err := host.Verifier(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, newClient(t), ref); err != nil {
		t.Fatalf("host trust alone, unsigned image: %v", err)
	}
	v, err = host.Verifier(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, newClient(t), ref); !errors.Is(err, policy.ErrNoSignature) {
		t.Fatalf("fleet requires signatures: err = %v, want no-signature", err)
	}
	v, err = host.Verifier([]string{tr.Host + "/other"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.CheckAllowed(ref); !errors.Is(err, policy.ErrRegistryNotAllowed) {
		t.Fatalf("fleet allow-list: err = %v, want registry-not-allowed", err)
	}
}

func TestHostTrustFingerprintFollowsEverythingAVerdictDependsOn(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "cosign.pub")
	if err := os.WriteFile(keyFile, []byte("key one"), 0o600); err != nil {
		t.Fatal(err)
	}
	host := policy.HostTrust{SigningKeys: []string{keyFile}, RequireSignatures: true, AllowedRegistries: []string{"r.example/os"}}
	base := host.Fingerprint(nil, false)
	if host.Fingerprint(nil, false) != base {
		t.Fatal("fingerprint is not stable")
	}
	changed := map[string]string{
		"fleet requires signatures": host.Fingerprint(nil, true),
		"fleet allow-list":          host.Fingerprint([]string{"r.example/os/base"}, false),
	}
	loose := host
	loose.RequireSignatures = false
	changed["host requirement"] = loose.Fingerprint(nil, false)
	bundles := host
	bundles.AcceptBundles = true
	changed["bundles"] = bundles.Fingerprint(nil, false)
	if err := os.WriteFile(keyFile, []byte("key two"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed["key content"] = host.Fingerprint(nil, false)
	for what, fp := range changed {
		if fp == base {
			t.Errorf("%s: fingerprint did not change", what)
		}
	}
}
