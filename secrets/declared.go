package secrets

import (
	"crypto/ed25519"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/edwards25519"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"golang.org/x/crypto/ssh"
)

// ParseRecipient checks a recipient a fleet repository declares for a
// host (an age1… X25519 recipient, or an ssh-ed25519 / ssh-rsa public key
// in authorized_keys form) and returns what the host holds with it, for
// OpensFor: the recipient itself, normalized, and for an ssh-ed25519 key
// also the age1… recipient ssh-to-age derives from it (the host's SSH key
// opens both). A recipient with one character wrong fails age's bech32
// checksum or the SSH key's encoding: a look-alike is refused here, not
// matched.
func ParseRecipient(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "age1") {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("not an age X25519 recipient: %w", err)
		}
		return []string{r.String()}, nil
	}
	if !strings.HasPrefix(s, "ssh-") {
		return nil, fmt.Errorf("%q is neither an age recipient (age1…) nor an SSH public key (ssh-ed25519 …, ssh-rsa …)", shorten(s))
	}
	if _, err := agessh.ParseRecipient(s); err != nil {
		return nil, fmt.Errorf("not an SSH public key age can encrypt to: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("not an SSH public key: %w", err)
	}
	held := []string{normalizeRecipient(s)}
	if pub.Type() == ssh.KeyAlgoED25519 {
		x, err := derivedAgeRecipient(pub)
		if err != nil {
			return nil, fmt.Errorf("derive the age recipient of %s: %w", shorten(s), err)
		}
		held = append(held, x)
	}
	return held, nil
}

// derivedAgeRecipient is the age1… recipient ssh-to-age derives from an
// Ed25519 public key: the Edwards point in Montgomery form.
func derivedAgeRecipient(pub ssh.PublicKey) (string, error) {
	cpk, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return "", fmt.Errorf("no public key bytes in %s key", pub.Type())
	}
	edPub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("not an Ed25519 key")
	}
	return montgomeryRecipient(edPub)
}

func montgomeryRecipient(edPub []byte) (string, error) {
	p, err := new(edwards25519.Point).SetBytes(edPub)
	if err != nil {
		return "", err
	}
	conv, err := bech32.ConvertBits(p.BytesMontgomery(), 8, 5, true)
	if err != nil {
		return "", err
	}
	return bech32.Encode("age", conv)
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
