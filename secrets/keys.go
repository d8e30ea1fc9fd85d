package secrets

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha512"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"golang.org/x/crypto/ssh"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// DefaultSSHHostKeys are the SSH host keys a host decrypts with when its
// configuration names none: sshd's standard Ed25519 and RSA host keys.
// A missing one is skipped.
var DefaultSSHHostKeys = []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"}

// Keyring is a host's own age identities: what it decrypts with.
type Keyring struct {
	ids []age.Identity
	// held describes each key for messages: its public recipient(s) and
	// the file it came from. Never the private key.
	held []string
}

// Held lists the keys of the keyring for messages: "age1… (from FILE)".
func (k *Keyring) Held() []string { return append([]string(nil), k.held...) }

// Empty reports whether the keyring holds no key.
func (k *Keyring) Empty() bool { return k == nil || len(k.ids) == 0 }

// LoadKeyring reads the host's keys. identityFiles are age identity files
// (AGE-SECRET-KEY-1… lines as age-keygen writes them, comments allowed):
// each must exist. sshHostKeys are unencrypted OpenSSH private keys
// (Ed25519 or RSA); a missing one is skipped, since hosts commonly have no
// RSA host key. An Ed25519 host key decrypts both what was encrypted to
// the SSH key itself (age -R, sops --age "ssh-ed25519 …") and what was
// encrypted to the age1… recipient ssh-to-age derives from it.
func LoadKeyring(ctx context.Context, identityFiles, sshHostKeys []string) (*Keyring, error) {
	k := &Keyring{}
	for _, f := range identityFiles {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := boundedread.ReadFile(f, boundedread.MaxLocalFile)
		if err != nil {
			return nil, fmt.Errorf("read age identity file: %w", err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			// age's message names the line, never the key.
			return nil, fmt.Errorf("age identity file %s: %w", f, err)
		}
		for _, id := range ids {
			k.add(id, describeIdentity(id), f)
		}
	}
	for _, f := range sshHostKeys {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := boundedread.ReadFile(f, boundedread.MaxLocalFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read SSH host key: %w", err)
		}
		if err := k.addSSH(f, data); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keyring) add(id age.Identity, recipient, file string) {
	k.ids = append(k.ids, id)
	k.held = append(k.held, recipient+" (from "+file+")")
}

// addSSH adds an SSH host key: as agessh's identity for ssh-ed25519 and
// ssh-rsa stanzas, and, for Ed25519, as the X25519 identity ssh-to-age
// derives from it.
func (k *Keyring) addSSH(file string, pemBytes []byte) error {
	id, err := agessh.ParseIdentity(pemBytes)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return fmt.Errorf("SSH host key %s is protected by a passphrase: the agent cannot use it", file)
		}
		return fmt.Errorf("SSH host key %s: %w", file, err)
	}
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return fmt.Errorf("SSH host key %s: %w", file, err)
	}
	switch key := raw.(type) {
	case *ed25519.PrivateKey:
		return k.addEd25519(file, id, *key)
	case ed25519.PrivateKey:
		return k.addEd25519(file, id, key)
	case *rsa.PrivateKey:
		pub, err := ssh.NewPublicKey(&key.PublicKey)
		if err != nil {
			return fmt.Errorf("SSH host key %s: %w", file, err)
		}
		k.add(id, sshString(pub), file)
		return nil
	default:
		return fmt.Errorf("SSH host key %s is a %T key: age can use Ed25519 and RSA keys only", file, raw)
	}
}

func (k *Keyring) addEd25519(file string, id age.Identity, key ed25519.PrivateKey) error {
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("SSH host key %s: %w", file, err)
	}
	k.add(id, sshString(pub), file)
	x, err := sshToAgeIdentity(key)
	if err != nil {
		return fmt.Errorf("SSH host key %s: derive its age X25519 identity: %w", file, err)
	}
	k.add(x, x.Recipient().String(), file+", as ssh-to-age converts it")
	return nil
}

// sshToAgeIdentity is the X25519 identity ssh-to-age (and agessh, for its
// own stanzas) derives from an Ed25519 key: the first 32 bytes of
// SHA-512(seed), the Ed25519 secret scalar (RFC 8032 §5.1.5), which
// X25519 clamps the same way. Encoding it as an age identity string lets
// age's own X25519 code use it.
func sshToAgeIdentity(key ed25519.PrivateKey) (*age.X25519Identity, error) {
	h := sha512.Sum512(key.Seed())
	conv, err := bech32.ConvertBits(h[:32], 8, 5, true)
	if err != nil {
		return nil, err
	}
	s, err := bech32.Encode("age-secret-key-", conv)
	if err != nil {
		return nil, err
	}
	return age.ParseX25519Identity(strings.ToUpper(s))
}

func describeIdentity(id age.Identity) string {
	switch id := id.(type) {
	case *age.X25519Identity:
		return id.Recipient().String()
	case *age.HybridIdentity:
		return id.Recipient().String()
	}
	return fmt.Sprintf("a %T identity", id)
}

// sshString is an SSH public key in authorized_keys form without comment.
func sshString(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// noKeyError explains that none of the host's keys opens a file.
func (k *Keyring) noKeyError(file string, recipients []string) error {
	held := "no age key at all (set secrets.ageIdentityFiles in the host configuration, or give it an SSH host key)"
	if len(k.held) > 0 {
		held = strings.Join(k.held, "; ")
	}
	to := "anonymous recipients (a plain age file does not say whom it is for)"
	if len(recipients) > 0 {
		to = strings.Join(recipients, ", ")
	}
	return &Error{File: file, Msg: fmt.Sprintf("not encrypted to any key of this host: it is for %s; this host holds %s", to, held)}
}

// Error is a secret that cannot be read or decrypted. Its message never
// holds plaintext.
type Error struct {
	File string
	Msg  string
}

func (e *Error) Error() string { return e.File + ": " + e.Msg }
