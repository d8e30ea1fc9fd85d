package hostspec

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bootsync/bootsync/secrets"
)

// Secrets in the schema: `secrets.recipients` of a spec (the age
// recipients the hosts it applies to hold) and the etc entry keys `sops:`
// and `age:` (an encrypted file of the repository as the content, or, for
// SOPS with `template: true`, as `.Secrets` of the entry's template).

// recipientDecl is one declared recipient and what a host holding it can
// open (see secrets.ParseRecipient).
type recipientDecl struct {
	value string
	held  []string
	src   Source
}

var secretsObject = objectOf(
	field[specDoc]{key: "recipients", parse: func(d *decoder, v *yaml.Node, f string, s *specDoc) {
		list, ok := d.stringList(v, f)
		if !ok {
			return
		}
		for i, r := range list {
			held, err := secrets.ParseRecipient(r)
			if err != nil {
				d.failf(v.Content[i], index(f, i), "%v", err)
				continue
			}
			s.recipients = append(s.recipients, recipientDecl{value: strings.TrimSpace(r), held: held, src: d.src(v.Content[i])})
		}
	}},
)

// checkSecretPath accepts a clean relative path inside the repository.
func checkSecretPath(p string) string {
	if msg := checkFromPath(p); msg != "" {
		return "secret file" + strings.TrimPrefix(msg, "from")
	}
	return ""
}

// secret reports whether the entry's content is an encrypted file.
func (e *etcEntry) secret() bool { return e.sops.set || e.age.set }

// secretEntryRules checks an entry with `sops:` or `age:`: it names one
// encrypted file and one target path; with SOPS, content or from is the
// template that reads the decrypted document as .Secrets.
func (d *decoder) secretEntryRules(n *yaml.Node, field string, e *etcEntry) bool {
	key := "sops"
	if e.age.set {
		key = "age"
	}
	msg := ""
	switch {
	case e.absent:
		return d.etcEntryRules(n, field, e) // lists what cannot go with absent
	case e.sops.set && e.age.set:
		msg = "sops and age are both set: an entry takes its secret from one encrypted file"
	case !e.path.set:
		msg = key + ": needs path: the file under /etc to write"
	case e.age.set && (e.content.set || e.from.set):
		msg = "age: is the whole file, so content and from cannot be set with it (a template that reads secret values takes a SOPS file: sops: with template: true)"
	case (e.content.set || e.from.set) && !e.template:
		msg = "with sops:, content or from is a template that reads .Secrets: set template: true (or drop it to write the decrypted file as it is)"
	case e.content.set && e.from.set:
		msg = "content and from are both set: use one of them"
	case e.template && !e.content.set && !e.from.set:
		msg = "template: true needs the template in content or from (its .Secrets is the decrypted SOPS document)"
	}
	if msg != "" {
		d.failf(n, field, "%s", msg)
		return false
	}
	return true
}
