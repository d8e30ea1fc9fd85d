// Package bootc drives the bootc CLI on a host: it reads `bootc status` into a
// typed model and runs `bootc switch`, `bootc rollback` and `bootc upgrade`,
// gating newer flags on the probed bootc version.
//
// bootc's documentation asks management agents to fork/exec the CLI and to
// read `bootc status --format=json --format-version=1`; that is all this
// package does. The model follows bootc's spec.rs and the JSON Schema
// host-v1.schema.json; it reads what every bootc since v0.1.15 prints
// (apiVersion org.containers.bootc/v1) and bootc's older v1alpha1 YAML.
package bootc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// API versions and kind of the status document.
const (
	// APIVersionV1 is what every bootc since v0.1.15 prints.
	APIVersionV1 = "org.containers.bootc/v1"
	// APIVersionV1Alpha1 is what bootc before v0.1.15 printed; bootc's own
	// test fixtures still use it.
	APIVersionV1Alpha1 = "org.containers.bootc/v1alpha1"
	// KindBootcHost is the only kind bootc prints.
	KindBootcHost = "BootcHost"
)

// HostTypeBootcHost is the value of status.type on a host deployed by bootc
// from a container image. The enum is open-ended upstream: other values may
// appear and must not be treated as errors.
const HostTypeBootcHost = "bootcHost"

// StoreOstreeContainer is the value of BootEntry.Store for image-based
// deployments on the ostree backend.
const StoreOstreeContainer = "ostreeContainer"

// Transport names bootc uses in ImageReference.Transport.
const (
	TransportRegistry = "registry"
)

// BootOrder is spec.bootOrder: which deployment boots next.
type BootOrder string

// Boot orders.
const (
	// BootOrderDefault boots the staged deployment, else the booted one.
	BootOrderDefault BootOrder = "default"
	// BootOrderRollback boots the rollback deployment next; it is set
	// exactly when status.rollbackQueued is true.
	BootOrderRollback BootOrder = "rollback"
)

// Host is the document `bootc status` prints.
type Host struct {
	APIVersion string     `json:"apiVersion" yaml:"apiVersion"`
	Kind       string     `json:"kind" yaml:"kind"`
	Metadata   ObjectMeta `json:"metadata" yaml:"metadata"`
	Spec       HostSpec   `json:"spec" yaml:"spec"`
	Status     HostStatus `json:"status" yaml:"status"`
}

// ObjectMeta is the Kubernetes-style metadata bootc prints; in practice only
// Name ("host") is ever set.
type ObjectMeta struct {
	Name        string            `json:"name,omitempty" yaml:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

// HostSpec is the desired state bootc records: the image the host tracks
// (taken from the staged deployment if there is one, else from the booted
// one) and the boot order.
type HostSpec struct {
	// Image is nil when neither the staged nor the booted deployment comes
	// from a container image.
	Image     *ImageReference `json:"image" yaml:"image"`
	BootOrder BootOrder       `json:"bootOrder" yaml:"bootOrder"`
}

// HostStatus is what is deployed.
type HostStatus struct {
	// Staged is queued for the next boot (nil when nothing is staged).
	Staged *BootEntry `json:"staged" yaml:"staged"`
	// Booted is the running deployment; nil means the host is not deployed
	// by bootc (bootc's documented detection rule).
	Booted *BootEntry `json:"booted" yaml:"booted"`
	// Rollback is the previous deployment, the target of `bootc rollback`.
	Rollback *BootEntry `json:"rollback" yaml:"rollback"`
	// OtherDeployments lists pinned and other-stateroot deployments
	// (bootc ≥ 1.3; the key is omitted when empty).
	OtherDeployments []BootEntry `json:"otherDeployments,omitempty" yaml:"otherDeployments,omitempty"`
	// RollbackQueued is true when the rollback deployment boots next.
	RollbackQueued bool `json:"rollbackQueued" yaml:"rollbackQueued"`
	// Type is HostTypeBootcHost when the booted deployment is image based,
	// else nil.
	Type *string `json:"type" yaml:"type"`
	// UsrOverlay describes an overlay on /usr (bootc ≥ 1.14).
	UsrOverlay *UsrOverlay `json:"usrOverlay" yaml:"usrOverlay"`
	// ReadOnly is true when /sysroot is on read-only media (bootc ≥ 1.16.7).
	ReadOnly bool `json:"readOnly" yaml:"readOnly"`
}

// UsrOverlay is the state of a transient or persistent overlay on /usr.
type UsrOverlay struct {
	AccessMode  string `json:"accessMode" yaml:"accessMode"`   // "readOnly" | "readWrite"
	Persistence string `json:"persistence" yaml:"persistence"` // "transient" | "persistent"
}

// BootEntry is one deployment. Bools that older bootc versions do not print
// read as false.
type BootEntry struct {
	// Image is nil for a plain ostree commit or an rpm-ostree-modified
	// (Incompatible) deployment.
	Image *ImageStatus `json:"image" yaml:"image"`
	// CachedUpdate is what the last `bootc upgrade --check` found. It may
	// carry the same digest as Image (no update): compare digests.
	CachedUpdate *ImageStatus `json:"cachedUpdate" yaml:"cachedUpdate"`
	// Incompatible is true when the deployment has rpm-ostree local changes
	// that bootc cannot upgrade.
	Incompatible bool `json:"incompatible" yaml:"incompatible"`
	// Pinned deployments are never garbage-collected.
	Pinned bool `json:"pinned" yaml:"pinned"`
	// SoftRebootCapable says (relative to the booted deployment) that a
	// userspace-only reboot can switch to this one (bootc ≥ 1.7).
	SoftRebootCapable bool `json:"softRebootCapable" yaml:"softRebootCapable"`
	// DownloadOnly is true on a staged deployment whose finalization is
	// locked: it is discarded, not applied, by a reboot (bootc ≥ 1.12).
	DownloadOnly bool `json:"downloadOnly" yaml:"downloadOnly"`
	// Store is StoreOstreeContainer or nil.
	Store     *string             `json:"store" yaml:"store"`
	Ostree    *BootEntryOstree    `json:"ostree" yaml:"ostree"`
	Composefs *BootEntryComposefs `json:"composefs" yaml:"composefs"`
}

// BootEntryOstree is the ostree side of a deployment.
type BootEntryOstree struct {
	Checksum     string `json:"checksum" yaml:"checksum"`
	DeploySerial uint32 `json:"deploySerial" yaml:"deploySerial"`
	// Stateroot is empty on bootc before 1.3, which did not print it.
	Stateroot string `json:"stateroot" yaml:"stateroot"`
}

// BootEntryComposefs is the composefs-backend side of a deployment.
type BootEntryComposefs struct {
	Verity               string  `json:"verity" yaml:"verity"`
	BootType             string  `json:"bootType" yaml:"bootType"`     // "Bls" | "Uki"
	Bootloader           string  `json:"bootloader" yaml:"bootloader"` // "grub" | "grub-cc" | "systemd" | "none"
	BootDigest           *string `json:"bootDigest" yaml:"bootDigest"`
	MissingVerityAllowed bool    `json:"missingVerityAllowed" yaml:"missingVerityAllowed"`
}

// ImageStatus is the image a deployment was made from.
type ImageStatus struct {
	Image ImageReference `json:"image" yaml:"image"`
	// Version is the image's org.opencontainers.image.version (or
	// "version") label, if any.
	Version *string `json:"version" yaml:"version"`
	// Timestamp is the build time (RFC 3339, possibly with fractional
	// seconds); see BuildTime.
	Timestamp *string `json:"timestamp" yaml:"timestamp"`
	// ImageDigest is the manifest digest ("sha256:…") — the only value to
	// compare images by.
	ImageDigest string `json:"imageDigest" yaml:"imageDigest"`
	// Architecture uses OCI names (amd64, arm64, …); empty before bootc 1.1.7.
	Architecture string `json:"architecture" yaml:"architecture"`
}

// BuildTime parses Timestamp. It returns the zero time and no error when
// the image has no timestamp.
func (s *ImageStatus) BuildTime() (time.Time, error) {
	if s == nil || s.Timestamp == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s.Timestamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse image timestamp %q: %w", *s.Timestamp, err)
	}
	return t, nil
}

// ImageReference is an image with its transport and signature mode.
type ImageReference struct {
	// Image is the reference without transport prefix, for example
	// "quay.io/example/os@sha256:…" for the registry transport.
	Image     string `json:"image" yaml:"image"`
	Transport string `json:"transport" yaml:"transport"`
	// Signature is nil when bootc uses containers-policy.json as it is
	// (the default; bootc omits the key).
	Signature *ImageSignature `json:"signature,omitempty" yaml:"signature,omitempty"`
}

// EnforcesContainerPolicy reports whether the deployment was made with
// --enforce-container-sigpolicy (signature "containerPolicy").
func (r *ImageReference) EnforcesContainerPolicy() bool {
	return r != nil && r.Signature != nil && r.Signature.Kind == SignatureContainerPolicy
}

// Digest returns the deployment's manifest digest, or "" when e is nil or
// not image based.
func (e *BootEntry) Digest() string {
	if e == nil || e.Image == nil {
		return ""
	}
	return e.Image.ImageDigest
}

// Architecture returns the deployment's image architecture, or "" when
// unknown.
func (e *BootEntry) Architecture() string {
	if e == nil || e.Image == nil {
		return ""
	}
	return e.Image.Architecture
}

// IsBootc reports whether the host is deployed by bootc (status.booted is
// not null), bootc's documented test.
func (h *Host) IsBootc() bool { return h != nil && h.Status.Booted != nil }

// BootedDigest is the manifest digest of the running deployment, or "".
func (h *Host) BootedDigest() string {
	return h.entry(func(s *HostStatus) *BootEntry { return s.Booted }).Digest()
}

// StagedDigest is the manifest digest of the staged deployment, or "".
func (h *Host) StagedDigest() string {
	return h.entry(func(s *HostStatus) *BootEntry { return s.Staged }).Digest()
}

// RollbackDigest is the manifest digest of the rollback deployment, or "".
func (h *Host) RollbackDigest() string {
	return h.entry(func(s *HostStatus) *BootEntry { return s.Rollback }).Digest()
}

func (h *Host) entry(pick func(*HostStatus) *BootEntry) *BootEntry {
	if h == nil {
		return nil
	}
	return pick(&h.Status)
}

// ParseStatus reads the output of `bootc status` in JSON (what
// --format=json prints) or YAML (bootc's default when stdout is not a
// terminal, and the form of bootc's test fixtures). Unknown keys are
// ignored and keys missing on older bootc read as zero values; the
// document must be a BootcHost of apiVersion v1 or v1alpha1.
func ParseStatus(data []byte) (*Host, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("parse bootc status: empty output")
	}
	var h Host
	if trimmed[0] == '{' {
		if err := json.Unmarshal(trimmed, &h); err != nil {
			return nil, fmt.Errorf("parse bootc status JSON: %w", err)
		}
	} else {
		if err := yaml.Unmarshal(trimmed, &h); err != nil {
			return nil, fmt.Errorf("parse bootc status YAML: %w", err)
		}
	}
	switch h.APIVersion {
	case APIVersionV1, APIVersionV1Alpha1:
	case "":
		return nil, fmt.Errorf("parse bootc status: no apiVersion; this is not bootc status output")
	default:
		return nil, fmt.Errorf("parse bootc status: unsupported apiVersion %q (this bootsync reads %s and %s)",
			h.APIVersion, APIVersionV1, APIVersionV1Alpha1)
	}
	if h.Kind != KindBootcHost {
		return nil, fmt.Errorf("parse bootc status: kind is %q, want %s", h.Kind, KindBootcHost)
	}
	// The schema's default; old YAML documents omit it.
	if h.Spec.BootOrder == "" {
		h.Spec.BootOrder = BootOrderDefault
	}
	return &h, nil
}
