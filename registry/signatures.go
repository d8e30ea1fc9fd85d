package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types and annotations of signature artifacts.
const (
	// SimpleSigningMediaType is the layer media type of cosign's tag-based
	// signatures (containers/image calls it SigstoreSignatureMIMEType).
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// CosignSignatureAnnotation holds base64(signature over the layer blob).
	CosignSignatureAnnotation = "dev.cosignproject.cosign/signature"
	// SigstoreBundleMediaType is the artifact type and layer media type of a
	// Sigstore bundle v0.3 attached by cosign v3 through OCI referrers.
	SigstoreBundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

	// maxSignatureBlob bounds any signature payload or bundle read from a
	// registry (real ones are well under 10 KiB).
	maxSignatureBlob = 1 << 20
	// maxSignatures bounds the signatures examined for one image.
	maxSignatures = 64
)

// SignatureTag returns the tag that holds cosign's tag-based signatures for
// ref (a digest reference): "<repository>:sha256-<hex>.sig".
func SignatureTag(ref string) (string, error) {
	d, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	dd, ok := d.(name.Digest)
	if !ok {
		return "", &Error{Op: "signature tag", Ref: ref, Reason: ReasonInvalidReference, Err: errors.New("a digest reference is required")}
	}
	return dd.Context().Tag(strings.Replace(dd.DigestStr(), ":", "-", 1) + ".sig").String(), nil
}

// CosignSignature is one simple-signing layer of an image's tag-based
// signature manifest. Nothing in it is trusted until policy verifies it.
type CosignSignature struct {
	// Index is the layer's position in the signature manifest.
	Index       int
	LayerDigest string
	Annotations map[string]string
	// Payload is the layer blob (checked against LayerDigest), the exact
	// bytes that were signed. Nil when Err is set.
	Payload []byte
	// Err says why the layer could not be read (e.g. oversized).
	Err error
	// Endpoint is the repository it was read from (a registries.conf
	// mirror, or the primary).
	Endpoint string
}

// CosignSignatures fetches the tag-based signatures of ref (a digest
// reference): one GET of the "sha256-<hex>.sig" manifest and one GET per
// simple-signing layer. Like containers/image, it reads them from the
// endpoints that serve the digest (registries.conf mirrors allowed for
// digests, then the primary), the first that has them. When no signature
// manifest exists it returns an *Error with reason "not-found".
func (c *Client) CosignSignatures(ctx context.Context, ref string) ([]CosignSignature, error) {
	const op = "fetch cosign signatures"
	d, err := c.parseDigest(op, ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	sigs, ep, err := onEndpoints(ctx, c, op, d, func(ctx context.Context, ep endpoint) ([]CosignSignature, error) {
		return c.cosignSignaturesAt(ctx, op, ep.ref.(name.Digest))
	})
	for i := range sigs {
		sigs[i].Endpoint = ep.Name()
	}
	return sigs, err
}

func (c *Client) cosignSignaturesAt(ctx context.Context, op string, d name.Digest) ([]CosignSignature, error) {
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	got, err := c.puller.Get(ctx, tag)
	if err != nil {
		return nil, err
	}
	if got.MediaType != types.OCIManifestSchema1 && got.MediaType != types.DockerManifestSchema2 {
		return nil, &Error{Op: op, Ref: tag.String(), Reason: ReasonBadResponse,
			Err: fmt.Errorf("signature manifest has media type %q, want an image manifest", got.MediaType)}
	}
	m, err := v1.ParseManifest(bytes.NewReader(got.Manifest))
	if err != nil {
		return nil, &Error{Op: op, Ref: tag.String(), Reason: ReasonBadResponse, Err: fmt.Errorf("parse signature manifest: %w", err)}
	}
	var out []CosignSignature
	for i, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		if len(out) == maxSignatures {
			break
		}
		sig := CosignSignature{Index: i, LayerDigest: l.Digest.String(), Annotations: l.Annotations}
		sig.Payload, sig.Err = c.readBlob(ctx, d.Context(), l)
		if registryFailure(sig.Err) {
			return nil, sig.Err
		}
		out = append(out, sig)
	}
	return out, nil
}

// SigstoreBundle is one Sigstore bundle attached to an image through OCI
// referrers (or the "sha256-<hex>" referrers tag on registries without the
// referrers API). Nothing in it is trusted until policy verifies it.
type SigstoreBundle struct {
	// ManifestDigest is the digest of the artifact manifest holding it.
	ManifestDigest string
	// Bundle is the bundle JSON; nil when Err is set.
	Bundle []byte
	Err    error
	// Endpoint is the repository it was read from.
	Endpoint string
}

// SigstoreBundles fetches the Sigstore bundles that refer to ref (a digest
// reference): the referrers list (the API, else the fallback tag), then for
// each candidate its manifest and bundle blob, from the first endpoint
// serving the digest that has any (mirror copies often lack referrers). No
// bundles is not an error.
func (c *Client) SigstoreBundles(ctx context.Context, ref string) ([]SigstoreBundle, error) {
	const op = "fetch sigstore bundles"
	d, err := c.parseDigest(op, ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	bundles, ep, err := onEndpoints(ctx, c, op, d, func(ctx context.Context, ep endpoint) ([]SigstoreBundle, error) {
		b, err := c.sigstoreBundlesAt(ctx, ep.ref.(name.Digest), d.DigestStr())
		if err == nil && len(b) == 0 {
			// Try the next endpoint; none having any is "no bundles".
			return nil, &Error{Op: op, Ref: ep.ref.String(), Reason: ReasonNotFound, Err: errors.New("no Sigstore bundle refers to this digest")}
		}
		return b, err
	})
	if ReasonOf(err) == ReasonNotFound {
		return nil, nil
	}
	for i := range bundles {
		bundles[i].Endpoint = ep.Name()
	}
	return bundles, err
}

func (c *Client) sigstoreBundlesAt(ctx context.Context, d name.Digest, subject string) ([]SigstoreBundle, error) {
	idx, err := remote.Referrers(d, remote.Reuse(c.puller), remote.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read referrers: %w", err)
	}
	var out []SigstoreBundle
	for _, desc := range im.Manifests {
		// The fallback index written by cosign records the empty config
		// type instead of the bundle type; other artifact types (SBOMs,
		// other attestations) are skipped without fetching them.
		if at := desc.ArtifactType; at != "" && at != SigstoreBundleMediaType && at != string(types.OCIEmptyJSON) {
			continue
		}
		if len(out) == maxSignatures {
			break
		}
		b, ok, err := c.readBundle(ctx, d, desc, subject)
		if registryFailure(err) {
			return nil, err
		}
		if !ok {
			continue
		}
		out = append(out, SigstoreBundle{ManifestDigest: desc.Digest.String(), Bundle: b, Err: err})
	}
	return out, nil
}

// readBundle fetches one referrer manifest and, when it is a Sigstore bundle
// for d, the bundle blob. ok is false for other artifacts.
func (c *Client) readBundle(ctx context.Context, d name.Digest, desc v1.Descriptor, subject string) (bundle []byte, ok bool, err error) {
	got, err := c.puller.Get(ctx, d.Context().Digest(desc.Digest.String()))
	if err != nil {
		return nil, true, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(got.Manifest))
	if err != nil {
		return nil, true, fmt.Errorf("parse referrer manifest %s: %w", desc.Digest, err)
	}
	if m.ArtifactType != SigstoreBundleMediaType {
		return nil, false, nil
	}
	if m.Subject == nil || m.Subject.Digest.String() != subject {
		return nil, false, nil
	}
	for _, l := range m.Layers {
		if l.MediaType == SigstoreBundleMediaType {
			b, err := c.readBlob(ctx, d.Context(), l)
			return b, true, err
		}
	}
	return nil, true, fmt.Errorf("bundle manifest %s has no %s layer", desc.Digest, SigstoreBundleMediaType)
}

// readBlob fetches a small blob by digest; go-containerregistry checks the
// content against the digest while reading.
func (c *Client) readBlob(ctx context.Context, repo name.Repository, l v1.Descriptor) ([]byte, error) {
	if l.Size > maxSignatureBlob || l.Size < 0 {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed for a signature", l.Digest, l.Size, maxSignatureBlob)
	}
	layer, err := c.puller.Layer(ctx, repo.Digest(l.Digest.String()))
	if err != nil {
		return nil, err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", l.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSignatureBlob+1))
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", l.Digest, err)
	}
	if int64(len(b)) != l.Size {
		return nil, fmt.Errorf("blob %s is %d bytes, the manifest says %d", l.Digest, len(b), l.Size)
	}
	return b, nil
}

// registryFailure reports an error of the registry or the network (as
// opposed to bad content): it fails the whole operation, so an outage is
// never mistaken for a malformed signature.
func registryFailure(err error) bool {
	if err == nil {
		return false
	}
	var (
		terr *transport.Error
		rerr *retryAfterTooLongError
		nerr net.Error
	)
	return errors.As(err, &terr) || errors.As(err, &rerr) || errors.As(err, &nerr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isConnectionError(err)
}
