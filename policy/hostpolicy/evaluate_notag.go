//go:build !containers_image_openpgp

package hostpolicy

import (
	"context"
	"fmt"
)

// builtWithout is Check's answer on a host with a policy.json
// when bootsync was built without the tag containers_image_openpgp.
const builtWithout = "this bootsync was built without the build tag containers_image_openpgp and cannot evaluate %s; " +
	"rebuild it with `go build -tags containers_image_openpgp` (make sets it)"

// Check fails closed: without the tag, containers/image's signature
// package (and so the host's policy) is not linked in. A host without a
// policy.json is answered as in the full build.
func (c *Checker) Check(_ context.Context, ref string) (*Verdict, error) {
	file, v, err := c.policyFor(ref)
	if file == "" {
		return v, err
	}
	return nil, fmt.Errorf("host policy for %s: "+builtWithout, ref, file)
}
