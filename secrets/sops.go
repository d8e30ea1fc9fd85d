package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/logging"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

func init() {
	// SOPS's packages log through logrus to stderr; bootsync's libraries
	// never log, and nothing about a secret belongs in the journal.
	logging.SetLevel(logrus.PanicLevel)
}

// SOPS formats, as sops names them.
const (
	FormatYAML   = "yaml"
	FormatJSON   = "json"
	FormatDotenv = "dotenv"
	FormatINI    = "ini"
	FormatBinary = "binary"
)

// SOPSFile is what a SOPS file tells without its key.
type SOPSFile struct {
	Name string
	// Format is how sops reads the file, decided by its name as sops
	// decides it: .yaml/.yml, .json, .env, .ini, anything else binary.
	Format string
	// Groups are the age recipients of each key group, as written in the
	// file's sops.age[].recipient metadata.
	Groups [][]string
	// OtherKeys counts master keys bootsync cannot use (PGP, cloud KMS,
	// Vault).
	OtherKeys int
	// Threshold is how many key groups must be opened (Shamir); 1 for a
	// file with one group.
	Threshold int
	// Fingerprint is a digest of the encrypted values and the encrypted
	// MAC, never of plaintext: it changes when sops re-encrypts the
	// content, and not when only the recipients change (sops updatekeys).
	Fingerprint string
	// Shape is the document with each encrypted value replaced by a
	// placeholder of its type ("(secret)", 0, 0.0, false): what CI
	// renders templates with.
	Shape any

	data   []byte
	format formats.Format
}

// ParseSOPS reads the metadata and structure of a SOPS file without
// decrypting anything.
func ParseSOPS(name string, data []byte) (*SOPSFile, error) {
	f := &SOPSFile{Name: name, format: formats.FormatForPath(name), data: data}
	f.Format = formatName(f.format)
	tree, err := loadTree(f.format, data)
	if err != nil {
		return nil, &Error{File: name, Msg: fmt.Sprintf("not a SOPS file in %s format (sops chooses the format by the file name): %v", f.Format, err)}
	}
	for _, g := range tree.Metadata.KeyGroups {
		var rs []string
		for _, k := range g {
			if ak, ok := k.(*sopsage.MasterKey); ok {
				rs = append(rs, ak.Recipient)
			} else {
				f.OtherKeys++
			}
		}
		f.Groups = append(f.Groups, rs)
	}
	f.Threshold = tree.Metadata.ShamirThreshold
	if f.Threshold <= 0 || len(f.Groups) == 1 {
		f.Threshold = len(f.Groups)
	}
	if !f.hasAge() {
		return nil, &Error{File: name, Msg: "has no age recipient: bootsync decrypts SOPS files with age keys only (sops encrypt --age …)"}
	}
	enc := struct {
		Branches any    `json:"b"`
		MAC      string `json:"m"`
	}{branchesValue(tree.Branches, false), tree.Metadata.MessageAuthenticationCode}
	b, err := json.Marshal(enc)
	if err != nil {
		return nil, &Error{File: name, Msg: fmt.Sprintf("cannot fingerprint: %v", err)}
	}
	sum := sha256.Sum256(b)
	f.Fingerprint = "sops:" + hex.EncodeToString(sum[:])
	f.Shape = branchesValue(tree.Branches, true)
	if f.format == formats.Binary {
		f.Shape = secretPlaceholder
	}
	return f, nil
}

func (f *SOPSFile) hasAge() bool {
	n := 0
	for _, g := range f.Groups {
		if len(g) > 0 {
			n++
		}
	}
	return n >= f.Threshold && n > 0
}

// Recipients lists every age recipient of the file, for messages.
func (f *SOPSFile) Recipients() []string {
	var out []string
	for _, g := range f.Groups {
		out = append(out, g...)
	}
	return out
}

func formatName(f formats.Format) string {
	switch f {
	case formats.Yaml:
		return FormatYAML
	case formats.Json:
		return FormatJSON
	case formats.Dotenv:
		return FormatDotenv
	case formats.Ini:
		return FormatINI
	}
	return FormatBinary
}

// store is sops's own store for a format, with its default settings.
func store(f formats.Format) sops.Store {
	switch f {
	case formats.Yaml:
		return sopsyaml.NewStore(&config.YAMLStoreConfig{})
	case formats.Json:
		return sopsjson.NewStore(&config.JSONStoreConfig{})
	case formats.Dotenv:
		return dotenv.NewStore(&config.DotenvStoreConfig{})
	case formats.Ini:
		return ini.NewStore(&config.INIStoreConfig{})
	}
	return sopsjson.NewBinaryStore(&config.JSONBinaryStoreConfig{})
}

func loadTree(f formats.Format, data []byte) (sops.Tree, error) {
	return store(f).LoadEncryptedFile(data)
}

// DecryptSOPS decrypts a SOPS file with the host's keys: it returns what
// `sops decrypt` prints (at most maxSize bytes) and the document as
// template data (a map for structured formats, the content as a string
// for binary ones).
func (k *Keyring) DecryptSOPS(ctx context.Context, f *SOPSFile, maxSize int64) ([]byte, any, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// A fresh tree each time: decryption replaces its values in place.
	tree, err := loadTree(f.format, f.data)
	if err != nil {
		return nil, nil, &Error{File: f.Name, Msg: fmt.Sprintf("not a SOPS file: %v", err)}
	}
	svc := &ageKeyService{ids: k.ids}
	key, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{svc}, nil)
	if err != nil || len(key) == 0 {
		return nil, nil, k.noKeyError(f.Name, f.Recipients())
	}
	cipher := aes.NewCipher()
	computed, err := tree.Decrypt(key, cipher)
	if err != nil {
		// sops's message may quote values; say only what it means.
		return nil, nil, &Error{File: f.Name, Msg: "the data key opened, but the values do not decrypt with it: the file was changed without sops or is damaged"}
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || stored != computed {
		// Never print either MAC: the computed one is a hash of the
		// plaintext.
		return nil, nil, &Error{File: f.Name, Msg: "its MAC does not match its values: the file was changed without sops (or damaged); refusing it"}
	}
	out, err := store(f.format).EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, nil, &Error{File: f.Name, Msg: "cannot write the decrypted document in its format"}
	}
	if int64(len(out)) > maxSize {
		return nil, nil, &Error{File: f.Name, Msg: fmt.Sprintf("decrypts to %d bytes, more than limits.fileSize (%d)", len(out), maxSize)}
	}
	var doc any = string(out)
	if f.format != formats.Binary {
		doc = branchesValue(tree.Branches, false)
	}
	return out, doc, nil
}

// ageKeyService gives sops's data key decryption the host's age
// identities and nothing else: sops's own local key service would look for
// keys in the environment and the user's home, and run SOPS_AGE_KEY_CMD.
type ageKeyService struct {
	ids []age.Identity
}

var errNotAge = errors.New("not an age key: bootsync uses age keys only")

func (s *ageKeyService) Decrypt(_ context.Context, in *keyservice.DecryptRequest, _ ...grpc.CallOption) (*keyservice.DecryptResponse, error) {
	ak := in.GetKey().GetAgeKey()
	if ak == nil || len(s.ids) == 0 {
		return nil, errNotAge
	}
	mk := &sopsage.MasterKey{Recipient: ak.GetRecipient(), EncryptedKey: string(in.GetCiphertext())}
	sopsage.ParsedIdentities(s.ids).ApplyToMasterKey(mk)
	plain, err := mk.Decrypt()
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

func (s *ageKeyService) Encrypt(context.Context, *keyservice.EncryptRequest, ...grpc.CallOption) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("bootsync never encrypts")
}

// secretPlaceholder stands for an encrypted string in CI renders.
const secretPlaceholder = "(secret)"

// encType reads the value type sops records in clear in each encrypted
// value's envelope (ENC[AES256_GCM,data:…,iv:…,tag:…,type:int]).
var encType = regexp.MustCompile(`^ENC\[AES256_GCM,.*,type:([a-z]+)\]$`)

// branchesValue turns sops's tree into plain Go values (maps, slices,
// scalars) for templates; comments are dropped. With placeholders, each
// encrypted value becomes a placeholder of its recorded type.
func branchesValue(bs sops.TreeBranches, placeholders bool) any {
	if len(bs) == 1 {
		return branchValue(bs[0], placeholders)
	}
	out := make([]any, 0, len(bs))
	for _, b := range bs {
		out = append(out, branchValue(b, placeholders))
	}
	return out
}

func branchValue(b sops.TreeBranch, placeholders bool) map[string]any {
	m := make(map[string]any, len(b))
	for _, item := range b {
		key, ok := item.Key.(string)
		if !ok {
			continue // a comment
		}
		m[key] = treeValue(item.Value, placeholders)
	}
	return m
}

func treeValue(v any, placeholders bool) any {
	switch v := v.(type) {
	case sops.TreeBranch:
		return branchValue(v, placeholders)
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			if _, comment := x.(sops.Comment); comment {
				continue
			}
			out = append(out, treeValue(x, placeholders))
		}
		return out
	case string:
		if placeholders {
			if m := encType.FindStringSubmatch(v); m != nil {
				return placeholder(m[1])
			}
		}
		return v
	}
	return v
}

func placeholder(typ string) any {
	switch typ {
	case "int":
		return 0
	case "float":
		return 0.0
	case "bool":
		return false
	}
	return secretPlaceholder
}
