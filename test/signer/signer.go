// Package signer is the project's own cosign-format test signer. It signs
// image digests with an ECDSA P-256 key in cosign's tag-based format (the
// "sha256-<hex>.sig" simple-signing manifest) and in cosign v3's Sigstore
// bundle format (an OCI referrer), using sigstore's libraries for the
// cryptography and go-containerregistry for the artifacts. Options produce
// the negative cases the verifier must refuse. The interop tests check that
// the real `cosign verify --key` accepts what it writes.
package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Media types and annotations written by cosign.
const (
	SimpleSigningMediaType  = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation     = "dev.cosignproject.cosign/signature"
	BundleMediaType         = "application/vnd.dev.sigstore.bundle.v0.3+json"
	InTotoPayloadType       = "application/vnd.in-toto+json"
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// Signer holds one ECDSA P-256 key.
type Signer struct {
	priv *ecdsa.PrivateKey
	sv   *signature.ECDSASignerVerifier
}

// New generates a fresh key.
func New() (*Signer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	return &Signer{priv: priv, sv: sv}, nil
}

// PublicKey returns the public half of the key.
func (s *Signer) PublicKey() crypto.PublicKey { return s.priv.Public() }

// PublicKeyPEM returns the public key as PEM "PUBLIC KEY", like cosign.pub.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(s.priv.Public())
}

// WritePublicKey writes PublicKeyPEM to path.
func (s *Signer) WritePublicKey(path string) error {
	b, err := s.PublicKeyPEM()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Option changes what Sign and SignBundle write.
type Option func(*options)

type options struct {
	identity         string
	signedDigest     string
	garbage          bool
	replace          bool
	payloadType      string
	predicateType    string
	remoteOptions    []remote.Option
	tamperPayload    bool
	dockerMediaTypes bool
}

// WithIdentity writes dockerReference as the signed identity instead of the
// image's repository (a signature made for another repository).
func WithIdentity(dockerReference string) Option {
	return func(o *options) { o.identity = dockerReference }
}

// WithSignedDigest signs a payload for digest instead of the image's own
// digest, but stores it where the image's signatures are looked up.
func WithSignedDigest(digest string) Option { return func(o *options) { o.signedDigest = digest } }

// WithGarbageSignature stores an annotation that is not base64.
func WithGarbageSignature() Option { return func(o *options) { o.garbage = true } }

// WithTamperedPayload signs the payload, then changes one byte of it.
func WithTamperedPayload() Option { return func(o *options) { o.tamperPayload = true } }

// WithReplace replaces the existing signature manifest instead of
// appending a layer to it (cosign appends).
func WithReplace() Option { return func(o *options) { o.replace = true } }

// WithPredicateType sets the bundle statement's predicate type (default
// cosign's image-signing predicate).
func WithPredicateType(t string) Option { return func(o *options) { o.predicateType = t } }

// WithDockerMediaTypes writes the signature manifest as Docker schema 2, as
// cosign does with COSIGN_DOCKER_MEDIA_TYPES=1.
func WithDockerMediaTypes() Option { return func(o *options) { o.dockerMediaTypes = true } }

// WithRemoteOptions passes options (auth, transport, context) to
// go-containerregistry.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(o *options) { o.remoteOptions = append(o.remoteOptions, opts...) }
}

func digestRef(ref string) (name.Digest, error) {
	d, err := name.NewDigest(ref, name.StrictValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("signer: %q is not a digest reference: %w", ref, err)
	}
	return d, nil
}

// Sign writes a tag-based cosign signature for ref (repository@digest): a
// simple-signing payload naming the repository (no tag, like cosign) and
// the digest, signed with the key, appended as a layer to the
// "sha256-<hex>.sig" manifest.
func (s *Signer) Sign(ctx context.Context, ref string, opts ...Option) error {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	d, err := digestRef(ref)
	if err != nil {
		return err
	}
	signed := d
	if o.signedDigest != "" {
		if signed, err = digestRef(d.Context().Name() + "@" + o.signedDigest); err != nil {
			return err
		}
	}
	body, err := json.Marshal(payload.Cosign{Image: signed, ClaimedIdentity: o.identity})
	if err != nil {
		return fmt.Errorf("signer: marshal payload: %w", err)
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("signer: sign payload: %w", err)
	}
	if o.tamperPayload {
		body = bytes.Replace(body, []byte("cosign container image signature"), []byte("cosign container image signaturE"), 1)
	}
	ann := base64.StdEncoding.EncodeToString(sig)
	if o.garbage {
		ann = "this is %% not base64 !!"
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, o.remoteOptions...)
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")

	var base v1.Image = empty.Image
	if !o.replace {
		existing, err := remote.Image(tag, ropts...)
		switch {
		case err == nil:
			base = existing
		case isNotFound(err):
		default:
			return fmt.Errorf("signer: read %s: %w", tag, err)
		}
	}
	if base == empty.Image {
		if o.dockerMediaTypes {
			base = mutate.MediaType(base, types.DockerManifestSchema2)
			base = mutate.ConfigMediaType(base, types.DockerConfigJSON)
		} else {
			base = mutate.MediaType(base, types.OCIManifestSchema1)
			base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(body, SimpleSigningMediaType),
		Annotations: map[string]string{SignatureAnnotation: ann},
	})
	if err != nil {
		return fmt.Errorf("signer: build signature manifest: %w", err)
	}
	if err := remote.Write(tag, img, ropts...); err != nil {
		return fmt.Errorf("signer: push %s: %w", tag, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// SignBundle attaches a cosign-v3-style Sigstore bundle to ref
// (repository@digest): a DSSE envelope over an in-toto statement whose
// subject is the digest, signed with the key, carried by an OCI artifact
// manifest whose subject is the image (discoverable through the referrers
// API or the "sha256-<hex>" fallback tag).
func (s *Signer) SignBundle(ctx context.Context, ref string, opts ...Option) error {
	o := options{predicateType: CosignSignPredicateType}
	for _, opt := range opts {
		opt(&o)
	}
	d, err := digestRef(ref)
	if err != nil {
		return err
	}
	signedDigest := d.DigestStr()
	if o.signedDigest != "" {
		signedDigest = o.signedDigest
	}
	bundleJSON, err := s.bundleFor(ctx, signedDigest, o.predicateType)
	if err != nil {
		return err
	}
	if o.garbage {
		bundleJSON = []byte(`{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "garbage": true`)
	}

	ropts := append([]remote.Option{remote.WithContext(ctx)}, o.remoteOptions...)
	subject, err := remote.Head(d, ropts...)
	if err != nil {
		return fmt.Errorf("signer: read subject %s: %w", d, err)
	}
	cfg := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	layer := static.NewLayer(bundleJSON, BundleMediaType)
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(d.Context(), l, ropts...); err != nil {
			return fmt.Errorf("signer: push blob: %w", err)
		}
	}
	cfgDesc, err := descriptorOf(cfg)
	if err != nil {
		return err
	}
	layerDesc, err := descriptorOf(layer)
	if err != nil {
		return err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  BundleMediaType,
		Config:        cfgDesc,
		Layers:        []v1.Descriptor{layerDesc},
		Annotations: map[string]string{
			"dev.sigstore.bundle.content":       "dsse-envelope",
			"dev.sigstore.bundle.predicateType": o.predicateType,
		},
		Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("signer: marshal artifact manifest: %w", err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if err := remote.Put(d.Context().Digest(h.String()), rawManifest{raw: raw, mt: types.OCIManifestSchema1}, ropts...); err != nil {
		return fmt.Errorf("signer: push bundle artifact: %w", err)
	}
	return nil
}

// bundleFor signs an in-toto statement about signedDigest into a Sigstore
// bundle (JSON), as cosign's --new-bundle-format does.
func (s *Signer) bundleFor(ctx context.Context, signedDigest, predicateType string) ([]byte, error) {
	alg, hexDigest, _ := strings.Cut(signedDigest, ":")
	statement, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"digest": map[string]string{alg: hexDigest}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	})
	if err != nil {
		return nil, fmt.Errorf("signer: marshal statement: %w", err)
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: statement, PayloadType: InTotoPayloadType}, (*keypair)(s), sign.BundleOptions{Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("signer: sign bundle: %w", err)
	}
	b, err := sgbundle.NewBundle(pb)
	if err != nil {
		return nil, fmt.Errorf("signer: bundle: %w", err)
	}
	bundleJSON, err := b.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("signer: marshal bundle: %w", err)
	}
	return bundleJSON, nil
}

func descriptorOf(l v1.Layer) (v1.Descriptor, error) {
	dg, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	sz, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: dg, Size: sz}, nil
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// keypair adapts the Signer to sigstore-go's sign.Keypair.
type keypair Signer

func (k *keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}

func (k *keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
}

// GetHint is what cosign writes as the bundle's public key hint: the
// base64 SHA-256 of the PKIX DER key.
func (k *keypair) GetHint() []byte {
	der, err := cryptoutils.MarshalPublicKeyToDER(k.priv.Public())
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

func (k *keypair) GetKeyAlgorithm() string        { return "ECDSA" }
func (k *keypair) GetPublicKey() crypto.PublicKey { return k.priv.Public() }

func (k *keypair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.priv.Public())
	return string(b), err
}

func (k *keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	sum := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
	if err != nil {
		return nil, nil, err
	}
	return sig, sum[:], nil
}
