package policy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/bootsync/bootsync/registry"
)

// checkCosign verifies one tag-based signature layer for image d, the way
// containers/image's sigstoreSigned does with signedIdentity
// matchRepository: the signature over the exact payload bytes must verify
// with a trusted key, the payload must be a cosign container image
// signature for d's digest, and its docker-reference must name d's
// repository (a tag in it is ignored). It returns the key and the signed
// identity, or why the layer does not count.
func (v *Verifier) checkCosign(d name.Digest, s registry.CosignSignature) (*trustedKey, string, *finding) {
	where := fmt.Sprintf("cosign signature %d", s.Index+1)
	fail := func(reason Reason, format string, args ...any) (*trustedKey, string, *finding) {
		return nil, "", &finding{reason: reason, where: where, detail: fmt.Sprintf(format, args...)}
	}
	if s.Err != nil {
		return fail(ReasonMalformedSignature, "layer %s could not be read: %v", s.LayerDigest, s.Err)
	}
	b64, ok := s.Annotations[registry.CosignSignatureAnnotation]
	if !ok || b64 == "" {
		return fail(ReasonMalformedSignature, "layer %s has no %s annotation", s.LayerDigest, registry.CosignSignatureAnnotation)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fail(ReasonMalformedSignature, "the %s annotation is not base64: %v", registry.CosignSignatureAnnotation, err)
	}
	var key *trustedKey
	for _, k := range v.keys {
		if k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(s.Payload)) == nil {
			key = k
			break
		}
	}
	if key == nil {
		return fail(ReasonBadSignature, "does not verify with any trusted key [%s]", v.keyList())
	}
	// Only now, with the signature verified, is the payload worth reading.
	p, err := parseSimpleSigning(s.Payload)
	if err != nil {
		return fail(ReasonMalformedSignature, "signed payload: %v", err)
	}
	if got, want := p.Critical.Image.DockerManifestDigest, d.DigestStr(); got != want {
		return fail(ReasonWrongDigest, "signed by %s for digest %s, but the image is %s", key.label(), got, want)
	}
	signedRepo, err := signedRepository(p.Critical.Identity.DockerReference)
	if err != nil {
		return fail(ReasonMalformedSignature, "signed identity %q: %v", p.Critical.Identity.DockerReference, err)
	}
	if got, want := repositoryKey(signedRepo), repositoryKey(d.Context()); got != want {
		return fail(ReasonWrongIdentity, "signed by %s for repository %s, but the image is in %s", key.label(), got, want)
	}
	return key, p.Critical.Identity.DockerReference, nil
}

// parseSimpleSigning decodes a simple-signing payload strictly, like
// containers/image: unknown fields in the document or its critical section
// are refused, and the critical fields must be present.
func parseSimpleSigning(b []byte) (*payload.SimpleContainerImage, error) {
	var p payload.SimpleContainerImage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a simple-signing document: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not a simple-signing document: trailing data")
	}
	switch {
	case p.Critical.Type != payload.CosignSignatureType:
		return nil, fmt.Errorf("critical.type is %q, want %q", p.Critical.Type, payload.CosignSignatureType)
	case p.Critical.Image.DockerManifestDigest == "":
		return nil, errors.New("critical.image.docker-manifest-digest is missing")
	case p.Critical.Identity.DockerReference == "":
		return nil, errors.New("critical.identity.docker-reference is missing")
	}
	return &p, nil
}

// signedRepository parses a signature's docker-reference: a repository
// (what cosign writes) or a full reference with tag or digest (what skopeo
// writes), and returns its repository.
func signedRepository(ref string) (name.Repository, error) {
	if strings.ContainsAny(ref, ":@") {
		if r, err := name.ParseReference(ref, name.StrictValidation); err == nil {
			return r.Context(), nil
		}
	}
	return name.NewRepository(ref, name.StrictValidation)
}
