package secrets

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// AgeFile is what a plain age file tells without its key.
type AgeFile struct {
	Name    string
	Armored bool
	// Stanzas are the file's recipient stanzas. X25519 (and hybrid)
	// stanzas are anonymous: they do not say whom they are for. ssh-ed25519
	// and ssh-rsa stanzas carry a 4-byte tag of the SSH key (SSHTag).
	Stanzas []Stanza
	// Fingerprint is a digest of the encrypted file: every encryption
	// makes a new one, even of the same plaintext.
	Fingerprint string

	data []byte
}

// Stanza is one recipient stanza of an age header.
type Stanza struct {
	Type   string // X25519, ssh-ed25519, ssh-rsa, mlkem768x25519, scrypt, …
	SSHTag string // for ssh-ed25519 and ssh-rsa: base64 of SHA-256(key)[:4]
}

// ParseAge reads the header of an age file (binary or armored) without
// decrypting it.
func ParseAge(name string, data []byte) (*AgeFile, error) {
	f := &AgeFile{Name: name, data: data}
	hdr, err := age.ExtractHeader(f.reader())
	if err != nil {
		return nil, &Error{File: name, Msg: fmt.Sprintf("not an age file: %v", err)}
	}
	// age has no public header parser; an identity that only looks at the
	// stanzas gets them from age's own.
	var c stanzaCollector
	_, _ = age.DecryptHeader(hdr, &c)
	f.Stanzas = c.stanzas
	f.Armored = isArmored(data)
	sum := sha256.Sum256(data)
	f.Fingerprint = "age:" + hex.EncodeToString(sum[:])
	return f, nil
}

func (f *AgeFile) reader() io.Reader {
	if isArmored(f.data) {
		return armor.NewReader(bytes.NewReader(f.data))
	}
	return bytes.NewReader(f.data)
}

func isArmored(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header))
}

type stanzaCollector struct{ stanzas []Stanza }

func (c *stanzaCollector) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		st := Stanza{Type: s.Type}
		if (s.Type == "ssh-ed25519" || s.Type == "ssh-rsa") && len(s.Args) > 0 {
			st.SSHTag = s.Args[0]
		}
		c.stanzas = append(c.stanzas, st)
	}
	return nil, age.ErrIncorrectIdentity
}

// DecryptAge decrypts a plain age file with the host's keys; the plaintext
// may be at most maxSize bytes (age's own format bounds nothing).
func (k *Keyring) DecryptAge(ctx context.Context, f *AgeFile, maxSize int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(k.ids) == 0 {
		return nil, k.noKeyError(f.Name, nil)
	}
	r, err := age.Decrypt(f.reader(), k.ids...)
	if err != nil {
		var none *age.NoIdentityMatchError
		if errors.As(err, &none) || errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, k.noKeyError(f.Name, nil)
		}
		return nil, &Error{File: f.Name, Msg: fmt.Sprintf("cannot decrypt: %v", err)}
	}
	out, err := io.ReadAll(io.LimitReader(bufio.NewReader(r), maxSize+1))
	if err != nil {
		// age reports damage by position, never by content.
		return nil, &Error{File: f.Name, Msg: fmt.Sprintf("cannot decrypt: %v", err)}
	}
	if int64(len(out)) > maxSize {
		return nil, &Error{File: f.Name, Msg: fmt.Sprintf("decrypts to more than limits.fileSize (%d bytes)", maxSize)}
	}
	return out, nil
}
