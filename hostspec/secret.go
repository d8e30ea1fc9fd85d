package hostspec

import (
	"slices"
	"strings"

	"github.com/bootsync/bootsync/secrets"
)

// SecretRef says that an /etc file's content is a secret: where its
// encrypted file is and what can be known about it without a key. A
// resolved spec never holds plaintext; the agent decrypts with
// HostSpec.Decrypted just before writing.
type SecretRef struct {
	// File is the encrypted file in the repository.
	File string `json:"file"`
	// Format is "sops-yaml", "sops-json", "sops-dotenv", "sops-ini",
	// "sops-binary" or "age".
	Format string `json:"format"`
	// Fingerprint is a digest of the ciphertext (never of plaintext): it
	// changes when the secret is re-encrypted. See secrets.SOPSFile.
	Fingerprint string `json:"fingerprint"`
	// Recipients are the age recipients a SOPS file names; empty for a
	// plain age file, whose X25519 stanzas are anonymous.
	Recipients []string `json:"recipients,omitempty"`
	// Template is set when the entry's content is a template reading the
	// decrypted document as .Secrets.
	Template bool `json:"template,omitempty"`
	// Preview is the template rendered with placeholders in place of the
	// secret values ("(secret)", 0, false): what CI can show.
	Preview string `json:"preview,omitempty"`
	// Decrypted is set on a spec returned by HostSpec.Decrypted: the
	// entry's Content is plaintext.
	Decrypted bool `json:"-"`

	// For the agent: the parsed file, and the template with the data it
	// rendered with (the placeholders are swapped for the real values).
	src  *secretSource
	tmpl *tmpl
	data templateData
}

// Changed reports whether a host's file would change from a to b as far
// as can be known without a key: another encrypted file, a re-encryption
// (new ciphertext), or another template.
func (a *SecretRef) Changed(b *SecretRef) bool {
	return a.File != b.File || a.Format != b.Format || a.Fingerprint != b.Fingerprint || a.Template != b.Template || a.Preview != b.Preview
}

// secretSource is one encrypted file of the repository, parsed once
// without a key.
type secretSource struct {
	file string
	sops *secrets.SOPSFile // one of sops and age is set
	age  *secrets.AgeFile
}

func (s *secretSource) format() string {
	if s.sops != nil {
		return "sops-" + s.sops.Format
	}
	return "age"
}

func (s *secretSource) fingerprint() string {
	if s.sops != nil {
		return s.sops.Fingerprint
	}
	return s.age.Fingerprint
}

// prepareSecret adds an entry whose content is an encrypted file: the
// file itself, or a template (content or from) that reads it as .Secrets.
// Secret files are written 0600 unless the entry says otherwise.
func (l *loader) prepareSecret(file string, e *etcEntry, base etcItem, add func(*etcItem)) {
	src := l.secretFile(file, e)
	if src == nil {
		return
	}
	base.secret = src
	switch {
	case e.content.set:
		if base.tmpl = l.inlineTemplate(file, e); base.tmpl == nil {
			return
		}
	case e.from.set:
		from := e.from.v
		l.reads = append(l.reads, from)
		real, err := l.rfs.real(from)
		if err == nil && real.mode.IsDir() {
			l.fail(file, e.from.src, join(e.field, "from"), "from %q is a directory: the template of a secret entry is one file", from)
			return
		}
		if err != nil {
			l.fail(file, e.from.src, join(e.field, "from"), "from %q: %s", from, problem(err))
			return
		}
		l.reads = append(l.reads, real.path)
		base.src.From = from
		if !l.fileContent(file, &base, e, from, real) {
			return
		}
	}
	base.mode = 0o600
	if e.mode.set {
		base.mode = e.mode.v
	}
	add(&base)
}

// secretFile reads and parses the entry's encrypted file, once per
// repository path: its size is bounded by limits.fileSize, and it must be
// a regular file inside the repository (symbolic links are followed only
// within it, as for from:).
func (l *loader) secretFile(file string, e *etcEntry) *secretSource {
	key, at := "sops", e.sops
	if e.age.set {
		key, at = "age", e.age
	}
	field := join(e.field, key)
	name := at.v
	l.reads = append(l.reads, name)
	real, err := l.rfs.real(name)
	if err == nil {
		l.reads = append(l.reads, real.path)
	}
	data, _, err := l.rfs.readFile(name, "fileSize")
	if err != nil {
		if le, ok := l.limitProblem(file, at.src, field, name, err); ok {
			l.addLimitProblem(le)
			return nil
		}
		l.fail(file, at.src, field, "secret file %q: %s", name, problem(err))
		return nil
	}
	src := &secretSource{file: name}
	if key == "sops" {
		src.sops, err = secrets.ParseSOPS(name, data)
	} else {
		src.age, err = secrets.ParseAge(name, data)
	}
	if err != nil {
		l.fail(file, at.src, field, "%v", err)
		return nil
	}
	return src
}

// secretRef is the reference a resolved entry carries, and for templates
// the preview rendered with placeholders (the data's Secrets).
func secretRef(src *secretSource, t *tmpl) *SecretRef {
	ref := &SecretRef{File: src.file, Format: src.format(), Fingerprint: src.fingerprint(), src: src, tmpl: t, Template: t != nil}
	if src.sops != nil {
		ref.Recipients = src.sops.Recipients()
	}
	return ref
}

// placeholders is what templates see as .Secrets outside the host.
func (s *secretSource) placeholders() any {
	if s.sops != nil {
		return s.sops.Shape
	}
	return nil
}

// checkSecretRecipients checks, without decrypting, that the host can open
// every secret it uses with the recipients its layers declare
// (secrets.recipients of the fleet, its groups and its own file: a host
// holds its own key and the keys shared by its groups). What cannot be
// checked is a warning: a host that declares no recipient, and plain age
// files encrypted to X25519 recipients (age stanzas do not say whom they
// are for; SOPS files do).
func (fz *finalizing) checkSecretRecipients(decls []recipientDecl) {
	var held, declared []string
	for _, d := range decls {
		held = append(held, d.held...)
		declared = append(declared, d.value)
	}
	for i := range fz.spec.Etc {
		f := &fz.spec.Etc[i]
		if f.Secret == nil {
			continue
		}
		src, key := f.Secret.src, "etc["+f.Path+"]"
		if len(decls) == 0 {
			fz.warn(f.Source, key, "the host declares no secrets.recipients, so it cannot be checked that it can open %s", src.file)
			continue
		}
		opens, known := true, true
		if src.sops != nil {
			opens = src.sops.OpensFor(held)
		} else {
			opens, known = src.age.OpensFor(held)
		}
		switch {
		case !known:
			fz.warn(f.Source, key, "%s is a plain age file for anonymous (X25519) recipients: it cannot be checked without a key that the host can open it; use a SOPS file (or an SSH recipient) to have validate check it", src.file)
			fz.warns[len(fz.warns)-1].Host = "" // the same for every host: said once
		case !opens:
			fz.fail(f.Source, key, "secret %s is not encrypted to this host: %s; the host declares %s (re-encrypt it for the host, e.g. sops updatekeys)",
				src.file, describeRecipients(f.Secret), strings.Join(declared, ", "))
		}
	}
}

func describeRecipients(ref *SecretRef) string {
	if len(ref.Recipients) > 0 {
		return "it is for " + strings.Join(slices.Compact(slices.Sorted(slices.Values(ref.Recipients))), ", ")
	}
	return "none of its SSH stanzas is for the host's keys"
}
