package registry

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

// ParseReference parses an image reference strictly: the registry and the
// tag or digest must be written out ("registry.example.com/os/base:stable",
// "registry.example.com/os/base@sha256:…"). Nothing is defaulted, so
// "fedora" never silently becomes "index.docker.io/library/fedora:latest"
// on some hosts. A reference with both a tag and a digest is pinned to the
// digest; the tag is ignored, as bootc and podman do.
func ParseReference(ref string) (name.Reference, error) {
	if strings.TrimSpace(ref) != ref || ref == "" {
		return nil, &Error{Op: "parse reference", Ref: strconv.Quote(ref), Reason: ReasonInvalidReference,
			Err: fmt.Errorf("empty or surrounded by white space")}
	}
	// The distribution grammar in canonical form, as the fleet repository
	// is checked (hostspec.ParseImageReference): go-containerregistry alone
	// reads docker://host/x:1 as a registry named "docker:".
	if _, err := reference.ParseNamed(ref); err != nil {
		return nil, &Error{Op: "parse reference", Ref: strconv.Quote(ref), Reason: ReasonInvalidReference, Err: err,
			hint: "write the full form registry.example.com/path/name:tag or …@sha256:<64 hex>, without a transport such as docker://"}
	}
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return nil, &Error{Op: "parse reference", Ref: strconv.Quote(ref), Reason: ReasonInvalidReference, Err: err,
			hint: "write the full form registry.example.com/path/name:tag or …@sha256:<64 hex>"}
	}
	return r, nil
}

// IsDigestReference reports whether ref is pinned to a digest.
func IsDigestReference(ref string) bool {
	r, err := ParseReference(ref)
	if err != nil {
		return false
	}
	_, ok := r.(name.Digest)
	return ok
}

// PinnedReference returns "repository@digest" for ref (a tag or digest
// reference) and digest ("sha256:<hex>"): what bootc is switched to.
func PinnedReference(ref, digest string) (string, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	d, err := name.NewDigest(r.Context().Name()+"@"+digest, name.StrictValidation)
	if err != nil {
		return "", &Error{Op: "pin reference", Ref: ref, Reason: ReasonInvalidReference,
			Err: fmt.Errorf("digest %q: %w", digest, err)}
	}
	return d.String(), nil
}

// NormalizeArch maps the architecture names used by bootc status, uname -m
// and GOARCH to the OCI platform architecture used in image indexes:
// x86_64 → amd64, aarch64 → arm64, ppc64le and s390x unchanged. An empty
// arch means the architecture this program runs on.
func NormalizeArch(arch string) (string, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	switch strings.ToLower(arch) {
	case "amd64", "x86_64", "x86-64":
		return "amd64", nil
	case "arm64", "aarch64":
		return "arm64", nil
	case "ppc64le", "ppc64el":
		return "ppc64le", nil
	case "s390x":
		return "s390x", nil
	case "riscv64":
		return "riscv64", nil
	case "386", "i386", "i686":
		return "386", nil
	case "arm", "armv7l", "armhf":
		return "arm", nil
	}
	return "", fmt.Errorf("unknown architecture %q (want amd64/x86_64, arm64/aarch64, ppc64le or s390x)", arch)
}
