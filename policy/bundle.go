package policy

import (
	"encoding/hex"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/bootsync/bootsync/registry"
)

// CosignSignPredicateType is the in-toto predicate of the statement that
// `cosign sign` (v3, bundle format) signs for an image.
const CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"

// checkBundle verifies one Sigstore bundle for image d with sigstore-go:
// the DSSE signature must verify with a trusted key (no transparency log or
// timestamps are required: the key is the trust root), the statement must
// be cosign's image-signing predicate, and its subject must be d's digest.
//
// A bundle names no repository, so there is no identity check: accepting
// it relies on the digest and the key, and the key is trusted for the
// repositories the allow-lists permit.
func (v *Verifier) checkBundle(d name.Digest, sb registry.SigstoreBundle) (*trustedKey, *finding) {
	where := "sigstore bundle " + sb.ManifestDigest
	fail := func(reason Reason, format string, args ...any) (*trustedKey, *finding) {
		return nil, &finding{reason: reason, where: where, detail: fmt.Sprintf(format, args...)}
	}
	if sb.Err != nil {
		return fail(ReasonMalformedSignature, "could not be read: %v", sb.Err)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(sb.Bundle); err != nil {
		return fail(ReasonMalformedSignature, "not a Sigstore bundle: %v", err)
	}
	if _, err := b.Envelope(); err != nil {
		return fail(ReasonMalformedSignature, "not a DSSE bundle (cosign sign writes DSSE): %v", err)
	}
	var (
		key *trustedKey
		res *sgverify.VerificationResult
	)
	var lastErr error
	for _, k := range v.keys {
		// The subject digest is checked below, by hand, so that a trusted
		// signature over another digest is reported as such.
		r, err := k.bundles.Verify(&b, sgverify.NewPolicy(sgverify.WithoutArtifactUnsafe(), sgverify.WithKey()))
		if err == nil {
			key, res = k, r
			break
		}
		lastErr = err
	}
	if key == nil {
		return fail(ReasonBadSignature, "does not verify with any trusted key [%s]: %v", v.keyList(), lastErr)
	}
	if res.Statement == nil {
		return fail(ReasonMalformedSignature, "signed content is not an in-toto statement")
	}
	if pt := res.Statement.GetPredicateType(); pt != CosignSignPredicateType {
		return fail(ReasonMalformedSignature, "signed by %s, but the statement's predicate is %q, not an image signature (%s)", key.label(), pt, CosignSignPredicateType)
	}
	alg, hexDigest, ok := cutDigest(d.DigestStr())
	if !ok {
		return fail(ReasonMalformedSignature, "image digest %q is not algorithm:hex", d.DigestStr())
	}
	if _, err := hex.DecodeString(hexDigest); err != nil {
		return fail(ReasonMalformedSignature, "image digest %q is not hex", d.DigestStr())
	}
	var subjects []string
	for _, s := range res.Statement.GetSubject() {
		if s.GetDigest()[alg] == hexDigest {
			return key, nil
		}
		for a, h := range s.GetDigest() {
			subjects = append(subjects, a+":"+h)
		}
	}
	return fail(ReasonWrongDigest, "signed by %s for %v, but the image is %s", key.label(), subjects, d.DigestStr())
}

func cutDigest(s string) (alg, hexPart string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], i > 0 && i < len(s)-1
		}
	}
	return "", "", false
}
