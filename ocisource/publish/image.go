package publish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
)

// configBlob is a fleet artifact's config: the artifact says what it is
// through its media type and annotations, like Flux's.
var configBlob = []byte("{}")

// image packs fsys into a fleet artifact. The same files and metadata
// always give the same bytes, so the same digest.
func image(fsys gitsource.FS, meta ocisource.Metadata) (v1.Image, error) {
	var content bytes.Buffer
	if err := ocisource.Pack(&content, fsys); err != nil {
		return nil, err
	}
	layer := static.NewLayer(content.Bytes(), ocisource.ContentMediaType)
	layerDesc, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(configBlob))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: ocisource.ConfigMediaType, Digest: cfgDigest, Size: cfgSize},
		Layers:        []v1.Descriptor{{MediaType: layerDesc.MediaType, Digest: layerDesc.Digest, Size: layerDesc.Size}},
		Annotations:   meta.Annotations(),
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifactCore{manifest: raw, layer: layer})
}

// artifactCore is a fleet artifact as go-containerregistry's compressed
// image: exact manifest and config bytes, one layer.
type artifactCore struct {
	manifest []byte
	layer    v1.Layer
}

func (a *artifactCore) RawConfigFile() ([]byte, error)      { return configBlob, nil }
func (a *artifactCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifactCore) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifactCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, err := a.layer.Digest(); err == nil && d == h {
		return a.layer, nil
	}
	return nil, fmt.Errorf("the fleet artifact has no blob %s", h)
}

func v1SHA256(r io.Reader) (string, int64, error) {
	h, n, err := v1.SHA256(r)
	return h.String(), n, err
}
