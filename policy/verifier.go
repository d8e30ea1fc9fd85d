package policy

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bootsync/bootsync/registry"
)

// Signature formats a Verdict can name.
const (
	// FormatCosign is cosign's tag-based simple-signing signature
	// ("sha256-<hex>.sig"): written by cosign v2, cosign v3 with
	// --new-bundle-format=false, skopeo and podman, and the only format
	// bootc's containers-policy (sigstoreSigned) can check.
	FormatCosign = "cosign-simplesigning"
	// FormatBundle is a Sigstore bundle attached through OCI referrers,
	// cosign v3's default. bootc cannot check it.
	FormatBundle = "sigstore-bundle"
)

// Verifier applies a host's image policy: registry allow-lists, then
// signatures by trusted keys. Build it once from the host configuration and
// the fleet policy; it is safe for concurrent use.
type Verifier struct {
	keys          []*trustedKey
	allowLists    []allowList
	requireHost   bool
	requireFleet  bool
	acceptBundles bool
}

type config struct {
	keys          []*trustedKey
	keyFiles      []string
	allowLists    []allowList
	require       bool
	requireFleet  bool
	acceptBundles bool
}

// Option configures a Verifier. Options validate their arguments;
// NewVerifier returns the first error.
type Option func(*config) error

// WithKeys trusts public keys (ECDSA, RSA or Ed25519).
func WithKeys(pubs ...crypto.PublicKey) Option {
	return func(c *config) error {
		for i, pub := range pubs {
			k, err := newTrustedKey(pub, "")
			if err != nil {
				return fmt.Errorf("WithKeys: key %d: %w", i+1, err)
			}
			c.keys = append(c.keys, k)
		}
		return nil
	}
}

// WithKeyFiles trusts the PEM public keys in paths (trust.signingKeys):
// any one of them may sign, which is how keys are rotated.
func WithKeyFiles(paths ...string) Option {
	return func(c *config) error {
		for _, p := range paths {
			if p == "" {
				return errors.New("WithKeyFiles: empty path")
			}
		}
		c.keyFiles = append(c.keyFiles, paths...)
		return nil
	}
}

// WithAllowedRegistries adds a list of allowed repository prefixes
// ("registry.example.com/os", "127.0.0.1:5000"). Each call adds one list and
// an image must satisfy every list: the host's trust.registries and the
// fleet's policy.registries both apply. An empty list allows everything.
func WithAllowedRegistries(prefixes ...string) Option {
	return func(c *config) error { return c.addAllowList("host", prefixes) }
}

// WithRequireSignatures sets the host's trust.requireSignatures (default
// true). When false and the fleet does not require them either, images are
// accepted without any signature check.
func WithRequireSignatures(require bool) Option {
	return func(c *config) error {
		c.require = require
		return nil
	}
}

// WithFleetPolicy applies fleet.yaml's policy (hostspec.Policy's
// Registries and RequireSignatures), which can only add requirements: its
// registries are a further allow-list and requireSignatures turns checking
// on but never off.
func WithFleetPolicy(registries []string, requireSignatures bool) Option {
	return func(c *config) error {
		if err := c.addAllowList("fleet", registries); err != nil {
			return err
		}
		c.requireFleet = c.requireFleet || requireSignatures
		return nil
	}
}

// WithBundles sets whether cosign v3 Sigstore bundles are accepted as well
// as tag-based signatures (default true). Turn it off on hosts that also
// run `bootc switch --enforce-container-sigpolicy`, so bootsync never
// accepts an image that bootc will then refuse.
func WithBundles(accept bool) Option {
	return func(c *config) error {
		c.acceptBundles = accept
		return nil
	}
}

func (c *config) addAllowList(source string, prefixes []string) error {
	l := allowList{source: source}
	for _, p := range prefixes {
		n, err := normalizePrefix(p)
		if err != nil {
			return fmt.Errorf("allowed registries (%s): %w", source, err)
		}
		l.prefixes = append(l.prefixes, n)
	}
	c.allowLists = append(c.allowLists, l)
	return nil
}

// NewVerifier returns a Verifier. Requiring signatures without any trusted
// key is an error: it would refuse every image.
func NewVerifier(opts ...Option) (*Verifier, error) {
	cfg := config{require: true, acceptBundles: true}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, fmt.Errorf("image policy: %w", err)
		}
	}
	for _, p := range cfg.keyFiles {
		k, err := loadKeyFile(p)
		if err != nil {
			return nil, fmt.Errorf("image policy: %w", err)
		}
		cfg.keys = append(cfg.keys, k)
	}
	if (cfg.require || cfg.requireFleet) && len(cfg.keys) == 0 {
		return nil, errors.New("image policy: signatures are required but no trusted signing key is configured (trust.signingKeys)")
	}
	return &Verifier{
		keys:          cfg.keys,
		allowLists:    cfg.allowLists,
		requireHost:   cfg.require,
		requireFleet:  cfg.requireFleet,
		acceptBundles: cfg.acceptBundles,
	}, nil
}

// RequiresSignatures reports whether images must be signed.
func (v *Verifier) RequiresSignatures() bool { return v.requireHost || v.requireFleet }

// Verdict is an accepted image.
type Verdict struct {
	// Reference is repository@digest: deploy exactly this.
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	// Signed is false when signatures are not required (nothing was checked).
	Signed bool `json:"signed"`
	// Format is FormatCosign or FormatBundle.
	Format string `json:"format,omitempty"`
	// KeyFile and KeyID name the trusted key whose signature verified.
	KeyFile string `json:"keyFile,omitempty"`
	KeyID   string `json:"keyID,omitempty"`
	// Identity is the repository the signature names (tag-based format);
	// empty for bundles, which carry none.
	Identity string `json:"identity,omitempty"`
	// ResolvedFrom and SignatureFrom are the repositories that answered
	// (a registries.conf mirror or the primary); empty when no request
	// was needed.
	ResolvedFrom  string `json:"resolvedFrom,omitempty"`
	SignatureFrom string `json:"signatureFrom,omitempty"`
	// HostPolicy is the host containers policy's verdict, when the caller
	// evaluated it too (see policy/hostpolicy).
	HostPolicy string `json:"hostPolicy,omitempty"`
}

// String renders the verdict for `bootsync image verify`.
func (v *Verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "image:    %s\n", v.Reference)
	fmt.Fprintf(&b, "digest:   %s\n", v.Digest)
	if v.ResolvedFrom != "" {
		fmt.Fprintf(&b, "resolved: %s\n", v.ResolvedFrom)
	}
	if !v.Signed {
		b.WriteString("verdict:  accepted (signatures are not required by this policy)\n")
		return b.String()
	}
	fmt.Fprintf(&b, "format:   %s\n", v.Format)
	if v.KeyFile != "" {
		fmt.Fprintf(&b, "key:      %s (%s)\n", v.KeyFile, v.KeyID)
	} else {
		fmt.Fprintf(&b, "key:      %s\n", v.KeyID)
	}
	if v.Identity != "" {
		fmt.Fprintf(&b, "identity: %s\n", v.Identity)
	}
	if v.SignatureFrom != "" {
		fmt.Fprintf(&b, "signature read from: %s\n", v.SignatureFrom)
	}
	b.WriteString("verdict:  accepted\n")
	if v.Format == FormatBundle {
		b.WriteString("note:     bootc's own containers-policy cannot verify Sigstore bundles; sign with cosign --new-bundle-format=false for hosts that enforce it\n")
	}
	return b.String()
}

// CheckAllowed applies the allow-lists to ref (a tag or digest reference)
// without any registry request. It returns a *RefusedError with reason
// "registry-not-allowed", or a parse error.
func (v *Verifier) CheckAllowed(ref string) error {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return err
	}
	return v.checkAllowed(ref, r.Context())
}

func (v *Verifier) checkAllowed(ref string, repo name.Repository) error {
	for _, l := range v.allowLists {
		if !l.allows(repo) {
			return &RefusedError{Ref: ref, Reason: ReasonRegistryNotAllowed,
				Detail: fmt.Sprintf("repository %s is not under the %s's allowed registries [%s]",
					repositoryKey(repo), l.source, strings.Join(l.prefixes, ", "))}
		}
	}
	return nil
}

// ResolveAndVerify is what a host does with an image reference: check the
// allow-lists (no request), resolve the tag once (no request when
// pinnedDigest, from the reference or bootsync.lock, is given), and verify
// the signature on that digest. Deploy Verdict.Reference and nothing else.
func (v *Verifier) ResolveAndVerify(ctx context.Context, reg *registry.Client, ref, pinnedDigest string) (*Verdict, error) {
	if err := v.CheckAllowed(ref); err != nil {
		return nil, err
	}
	res, err := reg.ResolvePinned(ctx, ref, pinnedDigest)
	if err != nil {
		return nil, fmt.Errorf("verify image %s: %w", ref, err)
	}
	verdict, err := v.Verify(ctx, reg, res.Reference())
	if verdict != nil {
		verdict.ResolvedFrom = res.Endpoint
	}
	return verdict, err
}

// SignatureSource is where Verify finds an image's signatures
// (registry.Client).
type SignatureSource interface {
	// CosignSignatures returns the tag-based signatures of ref
	// (repository@digest); a *registry.Error with reason not-found when
	// there are none.
	CosignSignatures(ctx context.Context, ref string) ([]registry.CosignSignature, error)
	// SigstoreBundles returns the Sigstore bundles attached to ref.
	SigstoreBundles(ctx context.Context, ref string) ([]registry.SigstoreBundle, error)
}

// Verify applies the policy to ref, a digest reference (repository@sha256:…).
// The allow-lists are checked first, without any request. Then, when
// signatures are required, the image is accepted only if a signature for
// exactly this digest verifies with a trusted key: tag-based cosign
// signatures first, then (if enabled) Sigstore bundles.
//
// A refusal is a *RefusedError (see Reason); a registry failure that
// prevents a decision is returned wrapped, with its registry reason.
func (v *Verifier) Verify(ctx context.Context, reg SignatureSource, ref string) (*Verdict, error) {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("verify image: %w", err)
	}
	d, ok := r.(name.Digest)
	if !ok {
		return nil, fmt.Errorf("verify image %s: a digest reference is required; resolve the tag once and verify that digest", ref)
	}
	pinned := d.Context().Name() + "@" + d.DigestStr()
	if err := v.checkAllowed(pinned, d.Context()); err != nil {
		return nil, err
	}
	verdict := &Verdict{Reference: pinned, Digest: d.DigestStr()}
	if !v.RequiresSignatures() {
		return verdict, nil
	}

	var found []finding
	sigs, err := reg.CosignSignatures(ctx, pinned)
	switch {
	case registry.ReasonOf(err) == registry.ReasonNotFound:
		// No tag-based signature; bundles may still exist.
	case err != nil:
		return nil, fmt.Errorf("verify image %s: %w", pinned, err)
	case len(sigs) == 0:
		found = append(found, finding{reason: ReasonMalformedSignature, where: "cosign signature manifest " + sigTagFor(pinned),
			detail: "has no " + registry.SimpleSigningMediaType + " layer"})
	}
	for _, s := range sigs {
		key, ident, f := v.checkCosign(d, s)
		if f == nil {
			verdict.Signed, verdict.Format, verdict.KeyFile, verdict.KeyID, verdict.Identity = true, FormatCosign, key.file, key.id, ident
			verdict.SignatureFrom = s.Endpoint
			return verdict, nil
		}
		found = append(found, *f)
	}
	if v.acceptBundles {
		bundles, err := reg.SigstoreBundles(ctx, pinned)
		if err != nil {
			return nil, fmt.Errorf("verify image %s: %w", pinned, err)
		}
		for _, b := range bundles {
			key, f := v.checkBundle(d, b)
			if f == nil {
				verdict.Signed, verdict.Format, verdict.KeyFile, verdict.KeyID = true, FormatBundle, key.file, key.id
				verdict.SignatureFrom = b.Endpoint
				return verdict, nil
			}
			found = append(found, *f)
		}
	}
	return nil, v.refusal(pinned, found)
}

// finding is why one signature artifact did not verify.
type finding struct {
	reason Reason
	where  string // "cosign signature 1", "sigstore bundle sha256:…"
	detail string
}

// rank orders findings by how close the signature came to passing, so the
// reported reason is the most useful one: a trusted key signing the wrong
// repository says more than an unknown key.
var rank = map[Reason]int{
	ReasonWrongIdentity:      4,
	ReasonWrongDigest:        3,
	ReasonBadSignature:       2,
	ReasonMalformedSignature: 1,
}

func (v *Verifier) refusal(ref string, found []finding) error {
	if len(found) == 0 {
		where := "no cosign signature (tag " + sigTagFor(ref) + ")"
		if v.acceptBundles {
			where += " and no Sigstore bundle referrer"
		}
		return &RefusedError{Ref: ref, Reason: ReasonNoSignature, Detail: where + " for this digest"}
	}
	sort.SliceStable(found, func(i, j int) bool { return rank[found[i].reason] > rank[found[j].reason] })
	parts := make([]string, len(found))
	for i, f := range found {
		parts[i] = f.where + ": " + f.detail
	}
	return &RefusedError{Ref: ref, Reason: found[0].reason, Detail: strings.Join(parts, "; ")}
}

func sigTagFor(ref string) string {
	t, err := registry.SignatureTag(ref)
	if err != nil {
		return "sha256-<hex>.sig"
	}
	return t
}

func (v *Verifier) keyList() string {
	labels := make([]string, len(v.keys))
	for i, k := range v.keys {
		labels[i] = k.label()
	}
	return strings.Join(labels, ", ")
}
