package ocisource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of a fleet artifact.
const (
	// ConfigMediaType is the config blob's media type; it names the kind of
	// artifact, as OCI artifacts without artifactType do.
	ConfigMediaType = "application/vnd.bootsync.fleet.config.v1+json"
	// ContentMediaType is the one layer: the fleet directory as a gzip'd tar.
	ContentMediaType = "application/vnd.bootsync.fleet.content.v1.tar+gzip"
)

// Annotation keys of a fleet artifact's manifest.
const (
	AnnotationCreated  = "org.opencontainers.image.created"  // the commit time, RFC 3339
	AnnotationSource   = "org.opencontainers.image.source"   // the Git repository URL, without credentials
	AnnotationRevision = "org.opencontainers.image.revision" // "<branch>@sha1:<commit>" (Flux's form), or "sha1:<commit>"

	AnnotationCommit          = "dev.bootsync.fleet.commit"           // the commit id, 40 hex digits
	AnnotationGeneration      = "dev.bootsync.fleet.generation"       // the commit's generation, a decimal number ≥ 1
	AnnotationCommitTime      = "dev.bootsync.fleet.commit-time"      // the committer time, RFC 3339
	AnnotationCommitSignature = "dev.bootsync.fleet.commit-signature" // "verified" or "unverified"
	AnnotationPath            = "dev.bootsync.fleet.path"             // the directory of the Git repository that was packed ("." for all)
)

// Values of AnnotationCommitSignature.
const (
	// SignatureVerified: publish checked the commit's signature against
	// the commit keys it was given.
	SignatureVerified = "verified"
	// SignatureUnverified: publish was given no commit keys.
	SignatureUnverified = "unverified"
)

// maxGeneration bounds a generation (a trillion commits).
const maxGeneration = 1_000_000_000_000

// Metadata is what an artifact says about its commit.
type Metadata struct {
	Commit     string    // 40 hex digits
	Generation int64     // length of the commit's longest parent chain
	CommitTime time.Time // committer time
	// CommitSignature is SignatureVerified or SignatureUnverified.
	CommitSignature string
	Path            string // the packed directory of the Git repository
	Source          string // the Git URL (informational)
	Revision        string // "main@sha1:<commit>" (informational)
}

var commitID = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Annotations returns the manifest annotations for m.
func (m Metadata) Annotations() map[string]string {
	a := map[string]string{
		AnnotationCreated:         m.CommitTime.UTC().Format(time.RFC3339),
		AnnotationRevision:        m.Revision,
		AnnotationCommit:          m.Commit,
		AnnotationGeneration:      strconv.FormatInt(m.Generation, 10),
		AnnotationCommitTime:      m.CommitTime.UTC().Format(time.RFC3339),
		AnnotationCommitSignature: m.CommitSignature,
		AnnotationPath:            m.Path,
	}
	if m.Source != "" {
		a[AnnotationSource] = m.Source
	}
	return a
}

func (m Metadata) validate() error {
	switch {
	case !commitID.MatchString(m.Commit):
		return fmt.Errorf("%s %q is not a 40-hex commit id", AnnotationCommit, m.Commit)
	case m.Generation < 1 || m.Generation > maxGeneration:
		return fmt.Errorf("%s %d is out of range", AnnotationGeneration, m.Generation)
	case m.CommitSignature != SignatureVerified && m.CommitSignature != SignatureUnverified:
		return fmt.Errorf("%s %q: want %q or %q", AnnotationCommitSignature, m.CommitSignature, SignatureVerified, SignatureUnverified)
	case m.Path == "":
		return fmt.Errorf("%s is empty", AnnotationPath)
	}
	return nil
}

// Artifact is a parsed fleet artifact manifest.
type Artifact struct {
	Metadata
	// Content is the layer's descriptor: its digest and compressed size.
	Content v1.Descriptor
}

// ParseManifest reads a fleet artifact's manifest strictly: an OCI image
// manifest with this package's config and a single content layer, and every
// bootsync annotation present and well-formed. Anything else (an OS image
// named as a fleet source, another tool's artifact) is refused with a
// message saying what it is.
func ParseManifest(raw []byte) (*Artifact, error) {
	var m v1.Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	switch {
	case m.SchemaVersion != 2:
		return nil, fmt.Errorf("manifest schemaVersion is %d, want 2", m.SchemaVersion)
	case m.MediaType != "" && m.MediaType != types.OCIManifestSchema1:
		return nil, fmt.Errorf("manifest media type is %q, want %q", m.MediaType, types.OCIManifestSchema1)
	case m.Config.MediaType != ConfigMediaType:
		return nil, fmt.Errorf("config media type is %q, want %q", m.Config.MediaType, ConfigMediaType)
	case len(m.Layers) != 1:
		return nil, fmt.Errorf("the manifest has %d layers, a fleet artifact has exactly one", len(m.Layers))
	case m.Layers[0].MediaType != ContentMediaType:
		return nil, fmt.Errorf("layer media type is %q, want %q", m.Layers[0].MediaType, ContentMediaType)
	case m.Layers[0].Size < 0:
		return nil, fmt.Errorf("layer size %d is negative", m.Layers[0].Size)
	}
	meta, err := parseAnnotations(m.Annotations)
	if err != nil {
		return nil, err
	}
	return &Artifact{Metadata: meta, Content: m.Layers[0]}, nil
}

func parseAnnotations(a map[string]string) (Metadata, error) {
	var missing []string
	get := func(k string) string {
		v, ok := a[k]
		if !ok {
			missing = append(missing, k)
		}
		return v
	}
	m := Metadata{
		Commit:          get(AnnotationCommit),
		CommitSignature: get(AnnotationCommitSignature),
		Path:            get(AnnotationPath),
		Source:          a[AnnotationSource],
		Revision:        a[AnnotationRevision],
	}
	gen, when := get(AnnotationGeneration), get(AnnotationCommitTime)
	if len(missing) > 0 {
		return Metadata{}, fmt.Errorf("the manifest lacks the annotations %s", strings.Join(missing, ", "))
	}
	var err error
	if m.Generation, err = strconv.ParseInt(gen, 10, 64); err != nil {
		return Metadata{}, fmt.Errorf("%s %q is not a number", AnnotationGeneration, gen)
	}
	if m.CommitTime, err = time.Parse(time.RFC3339, when); err != nil {
		return Metadata{}, fmt.Errorf("%s %q is not an RFC 3339 time", AnnotationCommitTime, when)
	}
	if err := m.validate(); err != nil {
		return Metadata{}, err
	}
	return m, nil
}
