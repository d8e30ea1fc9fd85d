package publish

import (
	"crypto"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// LoadSigningKey reads the private key that signs fleet artifacts from
// keyFile: cosign's encrypted format ("ENCRYPTED SIGSTORE PRIVATE KEY"
// from `cosign generate-key-pair`, or the older "ENCRYPTED COSIGN PRIVATE
// KEY", as skopeo writes it), decrypted with the password in
// passwordFile; or an unencrypted PEM key ("PRIVATE KEY" PKCS#8, "EC
// PRIVATE KEY", "RSA PRIVATE KEY"), for which passwordFile is empty.
// ECDSA, RSA and Ed25519 keys are accepted, as by cosign.
func LoadSigningKey(keyFile, passwordFile string) (signature.SignerVerifier, error) {
	pemBytes, err := boundedread.ReadFile(keyFile, boundedread.MaxLocalFile)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", keyFile, err)
	}
	var password []byte
	if passwordFile != "" {
		if password, err = boundedread.ReadFile(passwordFile, boundedread.MaxLocalFile); err != nil {
			return nil, fmt.Errorf("read key password: %w", err)
		}
		password = []byte(strings.TrimRight(string(password), "\r\n"))
	}
	encrypted := strings.Contains(string(pemBytes), "-----BEGIN ENCRYPTED ")
	if encrypted && passwordFile == "" {
		return nil, fmt.Errorf("signing key %s is encrypted: give its password with --key-password-file", keyFile)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		if encrypted {
			// The message of a wrong password is "decryption failed".
			return nil, fmt.Errorf("signing key %s: cannot decrypt it with the given password: %w", keyFile, err)
		}
		return nil, fmt.Errorf("signing key %s: not a supported private key (want cosign's encrypted key or a PEM PKCS#8 key): %w", keyFile, err)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	if _, err := sv.PublicKey(); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	return sv, nil
}
