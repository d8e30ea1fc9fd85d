package registry

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Which manifest bootc boots on a host: the platform entry of an index.

// PlatformDigest returns the digest of the manifest that bootc boots on a
// host of architecture arch (bootc's imageDigest) for ref, a digest
// reference. For a plain manifest that is ref's own digest: no request when
// the kind is known from Resolve. For an index it is the index entry for
// linux/arch, read with one GET of the index by digest (so its content is
// checked against the digest that was verified). Results are cached: they
// are content-addressed and never change.
func (c *Client) PlatformDigest(ctx context.Context, ref, arch string) (string, error) {
	d, err := c.parseDigest("find platform manifest", ref)
	if err != nil {
		return "", err
	}
	arch, err = NormalizeArch(arch)
	if err != nil {
		return "", &Error{Op: "find platform manifest", Ref: ref, Reason: ReasonNoPlatform, Err: err}
	}
	digest := d.DigestStr()
	if mt, ok := c.cache.mediaType(digest); ok && !mt.IsIndex() {
		return digest, nil
	}
	plats, ok := c.cache.platforms(digest)
	if !ok {
		var err error
		if plats, err = c.fetchPlatforms(ctx, d); err != nil {
			return "", err
		}
		if plats == nil { // a plain manifest
			return digest, nil
		}
	}
	if pd, ok := plats.byArch[arch]; ok {
		return pd, nil
	}
	return "", &Error{Op: "find platform manifest", Ref: ref, Reason: ReasonNoPlatform,
		Err: fmt.Errorf("the index has no linux/%s image (it has: %s)", arch, strings.Join(plats.all, ", "))}
}

// indexPlatforms is what an index offers: linux architecture → manifest
// digest, and every os/arch for error messages.
type indexPlatforms struct {
	byArch map[string]string
	all    []string
}

// fetchPlatforms reads d's manifest by digest (go-containerregistry checks
// it against the digest) and records its kind; for an index it returns
// the platforms, for a plain manifest nil.
func (c *Client) fetchPlatforms(ctx context.Context, d name.Digest) (*indexPlatforms, error) {
	const op = "find platform manifest"
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	got, _, err := onEndpoints(ctx, c, op, d, func(ctx context.Context, ep endpoint) (*remote.Descriptor, error) {
		return c.puller.Get(ctx, ep.ref)
	})
	if err != nil {
		return nil, err
	}
	if err := checkBootable(got.MediaType); err != nil {
		return nil, &Error{Op: op, Ref: d.String(), Reason: ReasonUnsupported, Err: err}
	}
	c.cache.setMediaType(d.DigestStr(), got.MediaType)
	if !got.MediaType.IsIndex() {
		return nil, nil
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(got.Manifest))
	if err != nil {
		return nil, &Error{Op: op, Ref: d.String(), Reason: ReasonBadResponse, Err: fmt.Errorf("parse index: %w", err)}
	}
	plats := &indexPlatforms{byArch: map[string]string{}}
	for _, m := range idx.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		plats.all = append(plats.all, m.Platform.OS+"/"+m.Platform.Architecture)
		if _, dup := plats.byArch[m.Platform.Architecture]; m.Platform.OS == "linux" && !dup {
			plats.byArch[m.Platform.Architecture] = m.Digest.String()
		}
	}
	sort.Strings(plats.all)
	c.cache.setPlatforms(d.DigestStr(), plats)
	return plats, nil
}

// IsBooted reports whether bootc's booted imageDigest is the image pinned
// by ref (a digest reference): converged when it equals the pinned digest
// (bootc was given a plain manifest) or the pinned index's manifest for
// arch. Equality with the pinned digest costs no request.
func (c *Client) IsBooted(ctx context.Context, ref, arch, bootedDigest string) (bool, error) {
	d, err := c.parseDigest("compare booted image", ref)
	if err != nil {
		return false, err
	}
	if bootedDigest == "" {
		return false, nil
	}
	if bootedDigest == d.DigestStr() {
		return true, nil
	}
	pd, err := c.PlatformDigest(ctx, ref, arch)
	if err != nil {
		return false, err
	}
	return pd == bootedDigest, nil
}
