//go:build containers_image_openpgp

package hostpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
)

// Check evaluates the policy for ref (repository@digest, what bootc is
// switched to). A refusal is a *policy.RefusedError with reason
// "host-policy" carrying containers/image's own words; a registry failure
// that prevents a decision is returned as a plain error.
func (c *Checker) Check(ctx context.Context, ref string) (*Verdict, error) {
	file, v, err := c.policyFor(ref)
	if file == "" {
		return v, err
	}
	refuse := func(format string, args ...any) error {
		return &policy.RefusedError{Ref: ref, Reason: policy.ReasonHostPolicy, Detail: file + ": " + fmt.Sprintf(format, args...)}
	}
	pol, err := signature.NewPolicyFromFile(file)
	if err != nil {
		return nil, refuse("bootc cannot use it either: %v", err)
	}
	pc, err := signature.NewPolicyContext(pol)
	if err != nil {
		return nil, refuse("%v", err)
	}
	defer func() { _ = pc.Destroy() }()
	// containers/image's own client has no overall deadline.
	ctx, cancel := context.WithTimeout(ctx, registry.DefaultTimeout)
	defer cancel()
	dref, err := docker.ParseReference("//" + ref)
	if err != nil {
		return nil, fmt.Errorf("host policy for %s: %w", ref, err)
	}
	src, err := dref.NewImageSource(ctx, c.systemContext(ref))
	if err != nil {
		return nil, fmt.Errorf("host policy for %s: open the image as bootc would: %w", ref, err)
	}
	defer src.Close()
	allowed, err := pc.IsRunningImageAllowed(ctx, image.UnparsedInstance(src, nil))
	if allowed && err == nil {
		return &Verdict{PolicyFile: file, Allowed: true}, nil
	}
	if transient(err) {
		return nil, fmt.Errorf("host policy for %s: evaluate %s: %w", ref, file, err)
	}
	return nil, refuse("%v (bootc's pull would refuse this image)", err)
}

// transient reports an evaluation that failed for want of an answer (the
// network, a deadline) rather than because the policy refuses the image.
func transient(err error) bool {
	var (
		uerr *url.Error
		nerr net.Error
	)
	return err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &uerr) || errors.As(err, &nerr))
}

// systemContext is what bootc's image proxy runs with on this host: paths
// under the root, bootc's auth file, plain HTTP for insecure registries.
func (c *Checker) systemContext(ref string) *types.SystemContext {
	sys := &types.SystemContext{DockerRegistryUserAgent: "bootsync"}
	if c.root != "/" {
		sys.RootForImplicitAbsolutePaths = c.root
	}
	for _, p := range registry.HostAuthFiles(c.root).Ostree {
		if _, err := os.Stat(p); err == nil {
			sys.AuthFilePath = p
			break
		}
	}
	host, _, _ := strings.Cut(ref, "/")
	if slices.Contains(c.insecure, host) {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	return sys
}
