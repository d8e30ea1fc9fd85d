package policy

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// trustedKey is one public key the host trusts to sign OS images.
type trustedKey struct {
	file     string // where it was read from; empty for WithKeys
	id       string // "sha256:<hex>" of the PKIX DER encoding
	verifier signature.Verifier
	bundles  *sgverify.Verifier // Sigstore bundle verifier trusting only this key
}

func (k *trustedKey) label() string {
	if k.file != "" {
		return k.file + " (" + k.id + ")"
	}
	return k.id
}

// newTrustedKey loads pub for both signature formats. RSA, ECDSA and
// Ed25519 keys are accepted, as by containers/image's sigstoreSigned.
func newTrustedKey(pub crypto.PublicKey, file string) (*trustedKey, error) {
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return nil, err
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	// No validity window: a long-lived key is valid until it is removed from
	// the host's configuration (rotation = adding the new key first).
	key := root.NewExpiringKey(v, time.Time{}, time.Time{})
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
	bv, err := sgverify.NewVerifier(tm, sgverify.WithNoObserverTimestamps())
	if err != nil {
		return nil, err
	}
	return &trustedKey{file: file, id: "sha256:" + hex.EncodeToString(sum[:]), verifier: v, bundles: bv}, nil
}

// loadKeyFile reads a PEM "PUBLIC KEY" file (cosign.pub, skopeo's .pub,
// /etc/pki/containers/*.pub).
func loadKeyFile(path string) (*trustedKey, error) {
	pemBytes, err := boundedread.ReadFile(path, boundedread.MaxLocalFile)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: not a PEM public key: %w", path, err)
	}
	k, err := newTrustedKey(pub, path)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	return k, nil
}
