package hostspec

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bootsync/bootsync/secrets"
)

// SecretError is a secret entry the host cannot turn into content: no key
// of the host opens it, it was tampered with, or its template fails with
// the real values. Its message never holds plaintext.
type SecretError struct {
	Path   string // the /etc path
	File   string // the encrypted file in the repository
	Source Source // the etc entry
	Err    error
}

func (e *SecretError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Path, e.Source, e.Err)
}

func (e *SecretError) Unwrap() error { return e.Err }

// HasSecrets reports whether any /etc file of the spec is a secret.
func (s *HostSpec) HasSecrets() bool {
	return slices.ContainsFunc(s.Etc, func(f EtcFile) bool { return f.Secret != nil })
}

// Decrypted returns a copy of the spec whose secret entries hold their
// plaintext (decrypted with the host's own keys and, for templates,
// rendered with the real values), for the /etc writer and nothing else.
// Every secret is decrypted before any is returned: when one cannot be,
// the error (SecretErrors joined) says which, and there is no spec, so
// that a pass writes all of /etc or nothing. Only a spec Resolve returned
// can be decrypted (its JSON form has no encrypted files).
func (s *HostSpec) Decrypted(ctx context.Context, kr *secrets.Keyring) (*HostSpec, error) {
	out := *s
	out.Etc = slices.Clone(s.Etc)
	var errs []error
	for i := range out.Etc {
		f := &out.Etc[i]
		if f.Secret == nil || f.Absent {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("decrypt secrets: %w", err)
		}
		content, err := f.Secret.open(ctx, kr)
		if err != nil {
			errs = append(errs, &SecretError{Path: f.Path, File: f.Secret.File, Source: f.Source, Err: err})
			continue
		}
		ref := *f.Secret
		ref.Decrypted = true
		f.Secret, f.Content, f.SHA256 = &ref, content, ""
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &out, nil
}

// open decrypts the entry's file and renders its template.
func (r *SecretRef) open(ctx context.Context, kr *secrets.Keyring) ([]byte, error) {
	if r.src == nil {
		return nil, errors.New("the spec carries no encrypted file (it was not resolved from the repository here)")
	}
	if kr == nil {
		kr = &secrets.Keyring{}
	}
	maxSize := DefaultLimits.FileSize
	if r.data.limits != nil {
		maxSize = r.data.limits.FileSize
	}
	if r.src.age != nil {
		return kr.DecryptAge(ctx, r.src.age, maxSize)
	}
	plain, doc, err := kr.DecryptSOPS(ctx, r.src.sops, maxSize)
	if err != nil || r.tmpl == nil {
		return plain, err
	}
	data := r.data
	data.ctx, data.Secrets = ctx, doc
	out, terr := r.tmpl.render(&data)
	if terr != nil {
		// text/template and its functions quote values (atoi of a secret
		// string would print it): only the place is safe to say.
		return nil, fmt.Errorf("its template (%s) fails with the decrypted values although it rendered with placeholders; the message is withheld as it may quote a secret value", terr.File)
	}
	return out, nil
}
