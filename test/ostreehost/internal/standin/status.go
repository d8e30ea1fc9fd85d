package standin

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bootsync/bootsync/apply/bootc"
)

// Commit metadata keys written at import, as ostree-ext names them.
const (
	metaManifestDigest = "ostree.manifest-digest"
	metaManifest       = "ostree.manifest"
	metaImageConfig    = "ostree.container.image-config"
)

// Origin prefixes of ostree-ext's OstreeImageReference.
const (
	originUnverifiedRegistry = "ostree-unverified-registry:"
	originSigned             = "ostree-image-signed:docker://"
)

// originString is the origin's container-image-reference for ref.
func originString(ref bootc.ImageReference) string {
	if ref.EnforcesContainerPolicy() {
		return originSigned + ref.Image
	}
	return originUnverifiedRegistry + ref.Image
}

// parseOrigin is the inverse of originString.
func parseOrigin(s string) (bootc.ImageReference, error) {
	if rest, ok := strings.CutPrefix(s, originSigned); ok {
		return bootc.ImageReference{Image: rest, Transport: bootc.TransportRegistry,
			Signature: &bootc.ImageSignature{Kind: bootc.SignatureContainerPolicy}}, nil
	}
	if rest, ok := strings.CutPrefix(s, originUnverifiedRegistry); ok {
		return bootc.ImageReference{Image: rest, Transport: bootc.TransportRegistry}, nil
	}
	return bootc.ImageReference{}, fmt.Errorf("origin container-image-reference %q is not one the stand-in writes", s)
}

// imageStatus is bootc's ImageStatus of a deployment: its origin and
// the metadata its commit got at import. Nil for a deployment that is
// not a container image.
func imageStatus(d *Deployment) (*bootc.ImageStatus, error) {
	if d.Origin == nil {
		return nil, nil
	}
	ref, err := parseOrigin(*d.Origin)
	if err != nil {
		return nil, err
	}
	digest := d.Metadata[metaManifestDigest]
	if digest == "" {
		return nil, fmt.Errorf("deployment %s: commit has no %s", d.ID, metaManifestDigest)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal([]byte(d.Metadata[metaImageConfig]), &cfg); err != nil {
		return nil, fmt.Errorf("deployment %s: image config in commit metadata: %w", d.ID, err)
	}
	st := &bootc.ImageStatus{Image: ref, ImageDigest: digest, Architecture: cfg.Architecture}
	labels := cfg.Config.Labels
	if v, ok := labels["org.opencontainers.image.version"]; ok {
		st.Version = &v
	} else if v, ok := labels["version"]; ok {
		st.Version = &v
	}
	if ts, ok := labels["org.opencontainers.image.created"]; ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			s := t.UTC().Format(time.RFC3339Nano)
			st.Timestamp = &s
		}
	} else if !cfg.Created.IsZero() {
		s := cfg.Created.UTC().Format(time.RFC3339Nano)
		st.Timestamp = &s
	}
	return st, nil
}

// bootEntry renders one deployment as bootc's BootEntry.
func bootEntry(d *Deployment, downloadOnly bool) (*bootc.BootEntry, error) {
	img, err := imageStatus(d)
	if err != nil {
		return nil, err
	}
	store := bootc.StoreOstreeContainer
	return &bootc.BootEntry{
		Image:  img,
		Pinned: d.Pinned,
		// ostree 2022.7 cannot soft-reboot: never capable here.
		SoftRebootCapable: false,
		DownloadOnly:      downloadOnly,
		Store:             &store,
		Ostree:            &bootc.BootEntryOstree{Checksum: d.Checksum, DeploySerial: d.Serial, Stateroot: d.Stateroot},
	}, nil
}

// HostStatus builds bootc's Host document from the sysroot state, as
// bootc's status.rs does.
func HostStatus(st *State) (*bootc.Host, error) {
	h := &bootc.Host{
		APIVersion: bootc.APIVersionV1,
		Kind:       bootc.KindBootcHost,
		Metadata:   bootc.ObjectMeta{Name: "host"},
		Spec:       bootc.HostSpec{BootOrder: bootc.BootOrderDefault},
	}
	booted, staged, rollback, others := st.Roles()
	if booted == nil {
		return h, nil
	}
	var err error
	if h.Status.Booted, err = bootEntry(booted, false); err != nil {
		return nil, fmt.Errorf("booted deployment: %w", err)
	}
	if staged != nil {
		if h.Status.Staged, err = bootEntry(staged, st.FinalizationLocked); err != nil {
			return nil, fmt.Errorf("staged deployment: %w", err)
		}
	}
	if rollback != nil {
		if h.Status.Rollback, err = bootEntry(rollback, false); err != nil {
			return nil, fmt.Errorf("rollback deployment: %w", err)
		}
		h.Status.RollbackQueued = rollback.Index < booted.Index
	}
	for i := range others {
		e, err := bootEntry(&others[i], false)
		if err != nil {
			return nil, fmt.Errorf("other deployment: %w", err)
		}
		h.Status.OtherDeployments = append(h.Status.OtherDeployments, *e)
	}
	if h.Status.RollbackQueued {
		h.Spec.BootOrder = bootc.BootOrderRollback
	}
	spec := h.Status.Booted
	if h.Status.Staged != nil {
		spec = h.Status.Staged
	}
	if spec.Image != nil {
		ref := spec.Image.Image
		h.Spec.Image = &ref
	}
	if h.Status.Booted.Image != nil {
		t := bootc.HostTypeBootcHost
		h.Status.Type = &t
	}
	return h, nil
}

// renderJSON prints what `bootc status --format=json` prints (≥ 1.5): one
// line, RFC 8785 canonical, no trailing newline.
func renderJSON(h *bootc.Host) ([]byte, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	out, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalize status: %w", err)
	}
	return out, nil
}
