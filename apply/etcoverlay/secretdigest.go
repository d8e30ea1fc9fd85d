package etcoverlay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/bootsync/bootsync/hostspec"
)

// Secret files (hostspec.EtcFile.Secret) are tracked like any other file,
// but never by a plain digest of their content: a sha256 of a short Wi-Fi
// key in the manifest, the status or a plan would let anyone who reads it
// try guesses offline. Their digests are HMAC-SHA256 keyed with a random
// key of this host (SecretDigestKeyFile in the state directory, 0600),
// written "hmac-sha256:<hex>", everywhere a plain file has its sha256:
// the manifest (written, history, originals), drift, plans and status.
// Without the key the digest says nothing; with it, the host can still
// tell its own write from an edit or a rollback.

// SecretDigestKeyFile holds the host's key for secret files' digests.
const SecretDigestKeyFile = "etc-secret-digest.key"

const keyedPrefix = "hmac-sha256:"

// digester computes a file's digest: sha256 hex, or with a key the keyed
// digest of a secret file.
type digester struct{ key []byte }

func (d digester) keyed() bool { return d.key != nil }

func (d digester) newHash() hash.Hash {
	if d.key != nil {
		return hmac.New(sha256.New, d.key)
	}
	return sha256.New()
}

// format renders a finished hash.
func (d digester) format(sum []byte) string {
	if d.key != nil {
		return keyedPrefix + hex.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

func (d digester) sum(b []byte) string {
	h := d.newHash()
	h.Write(b)
	return d.format(h.Sum(nil))
}

func isKeyed(digest string) bool { return strings.HasPrefix(digest, keyedPrefix) }

// WithSecretDigestKey gives the writer the host's key for the digests of
// secret files (see LoadSecretDigestKey). Without it, a spec with secret
// files gets a Problem for each of them and they are not written.
func WithSecretDigestKey(key []byte) Option {
	return func(o *options) error {
		if len(key) < 32 {
			return fmt.Errorf("secret digest key: %d bytes, want at least 32", len(key))
		}
		o.secretKey = key
		return nil
	}
}

// digesterLike returns the digester that made digest: keyed or plain.
func (w *Writer) digesterLike(digest string) digester {
	if isKeyed(digest) {
		return digester{key: w.secretKey}
	}
	return digester{}
}

// digesterFor chooses how a path is hashed in a plan: keyed when the spec
// makes it a secret or bootsync last recorded it keyed (a secret that left
// the spec is still compared, and kept, by keyed digests).
func (w *Writer) digesterFor(d *desiredFile, e *entry) digester {
	secret := d != nil && d.f.Secret != nil
	if !secret && e != nil {
		secret = e.Written != nil && isKeyed(e.Written.SHA256) ||
			e.Pending != nil && e.Pending.State != nil && isKeyed(e.Pending.State.SHA256) ||
			e.Original != nil && isKeyed(e.Original.SHA256)
	}
	if secret {
		return digester{key: w.secretKey}
	}
	return digester{}
}

// errNoSecretKey: the writer was made without WithSecretDigestKey.
var errNoSecretKey = errors.New("a secret file, but the /etc writer has no key for secret digests (WithSecretDigestKey)")

// checkSecret refuses a secret entry that does not hold its plaintext, and
// secrets without a digest key.
func (w *Writer) checkSecret(f *hostspec.EtcFile) error {
	if f.Secret == nil {
		return nil
	}
	if w.secretKey == nil {
		return errNoSecretKey
	}
	if !f.Secret.Decrypted {
		return fmt.Errorf("secret %s is not decrypted: the agent decrypts secrets before planning /etc", f.Secret.File)
	}
	return nil
}

// LoadSecretDigestKey reads the host's key for secret digests from the
// state directory, creating it (32 random bytes, 0600, written atomically)
// when create is set and it does not exist. Without create, a missing key
// is returned as nil: a read-only plan then treats secrets as unknown.
func LoadSecretDigestKey(ctx context.Context, stateDir string, create bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := filepath.Join(stateDir, SecretDigestKeyFile)
	key, err := os.ReadFile(p)
	switch {
	case err == nil && len(key) == 32:
		return key, nil
	case err == nil:
		return nil, fmt.Errorf("read secret digest key %s: %d bytes, want 32 (remove it to make a new one; secret files are then rewritten once)", p, len(key))
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read secret digest key: %w", err)
	case !create:
		return nil, nil
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make secret digest key: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("make secret digest key: %w", err)
	}
	if err := renameio.WriteFile(p, key, 0o600, renameio.WithTempDir(stateDir)); err != nil {
		return nil, fmt.Errorf("write secret digest key: %w", err)
	}
	if err := syncDir(stateDir); err != nil {
		return nil, fmt.Errorf("write secret digest key: %w", err)
	}
	return key, nil
}
