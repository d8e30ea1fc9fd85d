package publish

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/bootsync/bootsync/registry"
)

// sign makes sure ref (repository@digest) carries a signature by sv in
// cosign's tag-based format: a simple-signing payload naming the
// repository and the digest, signed over its exact bytes, as a layer of
// the "sha256-<hex>.sig" manifest (appended to the signatures already
// there, as cosign does). When a signature by the same key for this digest
// is already there, nothing is written: publishing again changes nothing.
// It reports whether it wrote one.
func sign(ctx context.Context, reg *registry.Client, ref string, sv signature.SignerVerifier) (bool, error) {
	d, err := name.NewDigest(ref, name.StrictValidation)
	if err != nil {
		return false, fmt.Errorf("sign %s: %w", ref, err)
	}
	sigTag, err := registry.SignatureTag(ref)
	if err != nil {
		return false, err
	}
	existing, err := reg.CosignSignatures(ctx, ref)
	switch {
	case registry.ReasonOf(err) == registry.ReasonNotFound:
	case err != nil:
		return false, fmt.Errorf("read the signatures of %s: %w", ref, err)
	}
	for _, s := range existing {
		if signedBy(s, sv, d.DigestStr()) {
			return false, nil
		}
	}
	body, err := json.Marshal(payload.Cosign{Image: d})
	if err != nil {
		return false, fmt.Errorf("sign %s: %w", ref, err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("sign %s: %w", ref, err)
	}
	base, err := signatureBase(ctx, reg, sigTag, len(existing) > 0)
	if err != nil {
		return false, err
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(body, registry.SimpleSigningMediaType),
		Annotations: map[string]string{registry.CosignSignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		return false, fmt.Errorf("sign %s: %w", ref, err)
	}
	if err := reg.Push(ctx, sigTag, img); err != nil {
		return false, fmt.Errorf("push the signature of %s: %w", ref, err)
	}
	return true, nil
}

// signatureBase is the signature manifest to append to: the existing one,
// or an empty OCI image manifest.
func signatureBase(ctx context.Context, reg *registry.Client, sigTag string, exists bool) (v1.Image, error) {
	if exists {
		img, err := reg.PullImage(ctx, sigTag)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", sigTag, err)
		}
		return img, nil
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// signedBy reports whether s is a valid signature by sv for digest.
func signedBy(s registry.CosignSignature, sv signature.SignerVerifier, digest string) bool {
	if s.Err != nil {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(s.Annotations[registry.CosignSignatureAnnotation])
	if err != nil || sv.VerifySignature(bytes.NewReader(sig), bytes.NewReader(s.Payload)) != nil {
		return false
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(s.Payload, &p); err != nil {
		return false
	}
	return p.Critical.Image.DockerManifestDigest == digest && strings.TrimSpace(p.Critical.Type) == payload.CosignSignatureType
}
