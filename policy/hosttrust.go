package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// HostTrust is the image policy a host's own configuration sets (trust.*
// in its config): the fleet repository can add to it, never loosen it.
// The agent and `bootsync image verify` build their Verifier from it.
type HostTrust struct {
	SigningKeys       []string // PEM public keys; any one may sign
	RequireSignatures bool
	AllowedRegistries []string // allowed repository prefixes; empty allows all
	AcceptBundles     bool     // also accept cosign v3 Sigstore bundles
}

// Verifier is the image policy for a fleet revision: the host's trust
// plus fleet.yaml's policy (its registries and requireSignatures), which
// can only tighten it.
func (t HostTrust) Verifier(fleetRegistries []string, fleetRequireSignatures bool) (*Verifier, error) {
	opts := []Option{
		WithAllowedRegistries(t.AllowedRegistries...),
		WithFleetPolicy(fleetRegistries, fleetRequireSignatures),
		WithRequireSignatures(t.RequireSignatures),
		WithBundles(t.AcceptBundles),
	}
	if len(t.SigningKeys) > 0 {
		opts = append(opts, WithKeyFiles(t.SigningKeys...))
	}
	return NewVerifier(opts...)
}

// Fingerprint changes whenever anything a verdict of t.Verifier(…) depends
// on changes: the keys' content, the allow-lists and whether signatures
// are required, so that a cached verdict is used only under the same
// trust.
func (t HostTrust) Fingerprint(fleetRegistries []string, fleetRequireSignatures bool) string {
	h := sha256.New()
	for _, k := range t.SigningKeys {
		data, _ := boundedread.ReadFile(k, boundedread.MaxLocalFile)
		fmt.Fprintf(h, "key %s %x\n", filepath.Clean(k), sha256.Sum256(data))
	}
	fmt.Fprintf(h, "require %v %v bundles %v\n", t.RequireSignatures, fleetRequireSignatures, t.AcceptBundles)
	fmt.Fprintf(h, "registries %s | %s\n", strings.Join(t.AllowedRegistries, ","), strings.Join(fleetRegistries, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}
