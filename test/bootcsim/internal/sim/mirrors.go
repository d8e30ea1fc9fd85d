package sim

import (
	"fmt"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
)

// pullSource is one place bootc pulls an image from.
type pullSource struct {
	ref      string
	insecure bool // registries.conf: plain HTTP allowed
}

// pullSources lists where bootc (containers/image) pulls image from on the
// host under root: the registries.conf mirrors allowed for the reference's
// kind (digest or tag), then the primary; a blocked endpoint is left out.
func pullSources(root, image string) ([]pullSource, error) {
	sys := &types.SystemContext{RootForImplicitAbsolutePaths: root}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", image, err)
	}
	reg, err := sysregistriesv2.FindRegistry(sys, named.Name())
	if err != nil {
		return nil, fmt.Errorf("loading registries configuration: %w", err)
	}
	if reg == nil {
		return []pullSource{{ref: image}}, nil
	}
	srcs, err := reg.PullSourcesFromReference(named)
	if err != nil {
		return nil, err
	}
	var out []pullSource
	for _, s := range srcs {
		own, err := sysregistriesv2.FindRegistry(sys, s.Reference.Name())
		if err != nil {
			return nil, fmt.Errorf("loading registries configuration: %w", err)
		}
		if own != nil && own.Blocked {
			continue
		}
		out = append(out, pullSource{ref: s.Reference.String(), insecure: s.Endpoint.Insecure || (own != nil && own.Insecure)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("registry %s is blocked in registries.conf", reg.Prefix)
	}
	return out, nil
}
