package ocisource

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/registry"
)

// ContentTooLargeError is an artifact whose content is over the host's
// repository size ceiling (limits.repoSize), compressed or unpacked. It
// is refused before the download (by the size in the manifest) or while
// unpacking, before anything of it is read.
type ContentTooLargeError struct {
	Ref        string
	Compressed bool
	*boundedread.TooLargeError
}

func (e *ContentTooLargeError) Error() string {
	what := "unpacked content"
	if e.Compressed {
		what = "compressed content"
	}
	return fmt.Sprintf("fleet artifact %s: the %s is %s (the host's limits.repoSize ceiling)", e.Ref, what, e.TooLargeError.Error())
}

func (e *ContentTooLargeError) Unwrap() error { return e.TooLargeError }

// fetchContent downloads the content layer of a (verified) artifact of
// repo into dir, unpacked, and checks every entry. Nothing is written
// where the agent reads until all of it passed: the tar is renamed into
// place last. It returns what to record.
func fetchContent(ctx context.Context, reg *registry.Client, repo string, a *Artifact, dir string, limit int64) (kept, error) {
	ref := repo + "@" + a.Content.Digest.String()
	if a.Content.Size > limit {
		return kept{}, &ContentTooLargeError{Ref: ref, Compressed: true, TooLargeError: &boundedread.TooLargeError{Size: a.Content.Size, Limit: limit}}
	}
	tmp, err := os.CreateTemp(dir, ".content-*.tar")
	if err != nil {
		return kept{}, &stateError{err}
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	var size int64
	_, err = reg.FetchBlob(ctx, ref, a.Content.Size, func(r io.Reader) error {
		// A retry at another endpoint starts over.
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := tmp.Truncate(0); err != nil {
			return err
		}
		h.Reset()
		size, err = unpack(tmp, h, r, limit, ref)
		return err
	})
	if err != nil {
		return kept{}, err
	}
	if err := tmp.Sync(); err != nil {
		return kept{}, &stateError{err}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return kept{}, &stateError{err}
	}
	if _, err := indexTar(tmp); err != nil {
		return kept{}, fmt.Errorf("fleet artifact %s: %w", ref, err)
	}
	k := kept{Digest: a.Content.Digest.String(), TarSHA256: hex.EncodeToString(h.Sum(nil)), Size: size}
	if err := os.Rename(tmp.Name(), tarPath(dir, k.Digest)); err != nil {
		return kept{}, &stateError{err}
	}
	return k, nil
}

// unpack gunzips r into w (and h), at most limit bytes.
func unpack(w io.Writer, h io.Writer, r io.Reader, limit int64, ref string) (int64, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, &InvalidContentError{Err: fmt.Errorf("not gzip: %w", err)}
	}
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(zr, limit+1))
	switch {
	case n > limit:
		return n, &ContentTooLargeError{Ref: ref, TooLargeError: &boundedread.TooLargeError{Size: -1, Limit: limit}}
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.Is(err, io.ErrUnexpectedEOF):
		return n, &InvalidContentError{Err: fmt.Errorf("gunzip: %w", err)}
	case err != nil:
		return n, err
	}
	return n, nil
}

// openKept opens content kept by an earlier poll (perhaps another
// process), after checking it is still what was written.
func openKept(dir string, k kept, a *Artifact) (*FS, error) {
	p := tarPath(dir, k.Digest)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	if n != k.Size || hex.EncodeToString(h.Sum(nil)) != k.TarSHA256 {
		return nil, fmt.Errorf("%s changed since it was written", p)
	}
	return OpenTar(p, a.CommitTime)
}
