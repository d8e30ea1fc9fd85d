package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// remoteOptions are how the client reaches registries through
// go-containerregistry, for reads (the puller) and writes alike.
func remoteOptions(rt http.RoundTripper, kc authn.Keychain) []remote.Option {
	return []remote.Option{
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(kc),
		// Retries are done once, by the go-retryablehttp layer.
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
}

// Manifest is a manifest read by digest: its exact bytes, checked against
// the digest by go-containerregistry.
type Manifest struct {
	Raw       []byte
	MediaType types.MediaType
	// Endpoint is the repository that answered (a registries.conf mirror,
	// or the primary).
	Endpoint string
}

// FetchManifest reads the manifest ref names (a digest reference) from the
// first endpoint that has it, registries.conf mirrors first, like an image
// pull. One GET.
func (c *Client) FetchManifest(ctx context.Context, ref string) (*Manifest, error) {
	const op = "fetch manifest"
	d, err := c.parseDigest(op, ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	got, ep, err := onEndpoints(ctx, c, op, d, func(ctx context.Context, ep endpoint) (*remote.Descriptor, error) {
		return c.puller.Get(ctx, ep.ref)
	})
	if err != nil {
		return nil, err
	}
	return &Manifest{Raw: got.Manifest, MediaType: got.MediaType, Endpoint: ep.Name()}, nil
}

// FetchBlob streams the blob digest (of size bytes) of the repository ref
// names (ref is repository@blob-digest) to read, from the first endpoint
// that has it, registries.conf mirrors first. read gets at most size
// bytes and must read to the end: the content is checked against the
// digest and the size there, and a mismatch is returned as FetchBlob's
// error even when read returned nil. When an endpoint fails, read is
// called again for the next one and must start over. One GET per
// endpoint tried.
func (c *Client) FetchBlob(ctx context.Context, ref string, size int64, read func(io.Reader) error) (string, error) {
	const op = "fetch blob"
	d, err := c.parseDigest(op, ref)
	if err != nil {
		return "", err
	}
	if size < 0 {
		return "", &Error{Op: op, Ref: ref, Reason: ReasonBadResponse, Err: fmt.Errorf("blob size %d is negative", size)}
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	var readErr *readError
	_, ep, err := onEndpoints(ctx, c, op, d, func(ctx context.Context, ep endpoint) (struct{}, error) {
		if readErr != nil {
			return struct{}{}, readErr // the content itself is bad: no endpoint can help
		}
		err := c.readBlobAt(ctx, ep.ref.(name.Digest), size, read)
		errors.As(err, &readErr)
		return struct{}{}, err
	})
	if readErr != nil {
		return "", readErr.err // the caller's own verdict on the content, not a registry failure
	}
	if err != nil {
		return "", err
	}
	return ep.Name(), nil
}

// readError carries the error of FetchBlob's read callback through
// onEndpoints, so that it is not taken for a registry failure.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func (c *Client) readBlobAt(ctx context.Context, d name.Digest, size int64, read func(io.Reader) error) error {
	layer, err := c.puller.Layer(ctx, d)
	if err != nil {
		return err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	counted := &countingReader{r: io.LimitReader(rc, size)}
	if err := read(counted); err != nil {
		if registryFailure(err) || counted.err != nil {
			return err
		}
		// read refused the content. It counts only if the content is what
		// was asked for: read the rest, so that a mirror serving other
		// bytes is caught by the digest check and the next endpoint tried.
		if derr := finishBlob(rc, counted, d, size); derr != nil {
			return derr
		}
		return &readError{err: err}
	}
	return finishBlob(rc, counted, d, size)
}

// finishBlob reads what the caller left of a blob, and then the end of the
// stream, where go-containerregistry checks the digest; it fails when the
// blob is not exactly size bytes or not the digest.
func finishBlob(rc io.Reader, counted *countingReader, d name.Digest, size int64) error {
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return err
	}
	if counted.n != size {
		return fmt.Errorf("blob %s is %d bytes, the manifest says %d", d.DigestStr(), counted.n, size)
	}
	var one [1]byte
	n, err := io.ReadFull(rc, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("blob %s is larger than the %d bytes the manifest says", d.DigestStr(), size)
	case err != io.EOF:
		return fmt.Errorf("blob %s: %w", d.DigestStr(), err)
	}
	return nil
}

// countingReader counts bytes and remembers the underlying reader's error
// (the network's, or a digest mismatch).
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// GetManifest reads the manifest ref (a tag or digest) from the registry
// the reference names, never a mirror: for publishing, which must see what
// the primary holds. A missing manifest is an *Error with reason not-found.
func (c *Client) GetManifest(ctx context.Context, ref string) (*Manifest, error) {
	const op = "read manifest"
	r, err := c.parse(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	got, err := c.puller.Get(ctx, r)
	if err != nil {
		return nil, classify(op, ref, c.timeout, err)
	}
	return &Manifest{Raw: got.Manifest, MediaType: got.MediaType, Endpoint: r.Context().Name()}, nil
}

// Push writes img (its blobs, then its manifest) to ref, a tag or a digest
// reference, at the registry the reference names (never a mirror), with
// the client's credentials. Blobs the registry already has are not
// uploaded again.
func (c *Client) Push(ctx context.Context, ref string, img v1.Image) error {
	r, err := c.parse(ref)
	if err != nil {
		return err
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if err := remote.Write(r, img, append(c.remoteOpts, remote.WithContext(ctx))...); err != nil {
		return classify("push", ref, c.timeout, err)
	}
	return nil
}

// PullImage returns the image at ref (a tag or digest) in the registry the
// reference names (never a mirror); its blobs are read lazily, with ctx.
// For publishing: appending a signature to an existing signature manifest.
func (c *Client) PullImage(ctx context.Context, ref string) (v1.Image, error) {
	r, err := c.parse(ref)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, append(c.remoteOpts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, classify("read image", ref, c.timeout, err)
	}
	return img, nil
}
