//go:build containers_image_openpgp

// Package hostpolicy evaluates a host's own containers-policy.json for the
// exact image bootc will be given, with containers/image's signature
// package and docker transport: the same code, policy file, registries.d
// (use-sigstore-attachments) and registries.conf mirrors bootc's pull uses.
// The agent runs it before staging anything, so an image that passes
// bootsync's gate but that bootc would refuse (for example one signed only
// with a cosign v3 bundle, which containers/image cannot verify) is refused
// early, with reason "host-policy", instead of failing inside `bootc switch`.
//
// Building this package needs the build tag containers_image_openpgp
// (containers/image otherwise links libgpgme through cgo); the Makefile and
// .ci/run set it.
package hostpolicy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
)

// Checker evaluates one host's containers policy. It is safe for
// concurrent use.
type Checker struct {
	root     string
	insecure []string
}

// New returns a Checker for the host under root ("/" on a host).
// insecure lists registries (host[:port]) reached over plain HTTP, like the
// agent's registry.insecure.
func New(root string, insecure ...string) (*Checker, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("host policy: root %q is not an absolute path", root)
	}
	return &Checker{root: filepath.Clean(root), insecure: insecure}, nil
}

// Verdict is the host policy's answer for an image.
type Verdict struct {
	// PolicyFile is the policy.json that was evaluated; empty when the
	// host has none (then nothing was checked: bootc could pull nothing).
	PolicyFile string `json:"policyFile,omitempty"`
	Allowed    bool   `json:"allowed"`
	Detail     string `json:"detail,omitempty"`
}

// String renders the verdict for `bootsync image verify`.
func (v *Verdict) String() string {
	if v.PolicyFile == "" {
		return "host policy: not checked (" + v.Detail + ")\n"
	}
	return fmt.Sprintf("host policy: accepted by %s\n", v.PolicyFile)
}

// under turns an absolute host path into its place under the root.
func (c *Checker) under(p string) string {
	if c.root == "/" {
		return p
	}
	return filepath.Join(c.root, p)
}

// PolicyFile is the policy.json containers/image would use:
// CONTAINERS_POLICY_JSON, else root's user file, else /etc, else
// /usr/share (the first that exists); "" when there is none.
func (c *Checker) PolicyFile() string {
	if p := os.Getenv("CONTAINERS_POLICY_JSON"); p != "" {
		return p
	}
	var candidates []string
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".config/containers/policy.json"))
	}
	candidates = append(candidates, c.under("/etc/containers/policy.json"), c.under("/usr/share/containers/policy.json"))
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Check evaluates the policy for ref (repository@digest, what bootc is
// switched to). A refusal is a *policy.RefusedError with reason
// "host-policy" carrying containers/image's own words; a registry failure
// that prevents a decision is returned as a plain error.
func (c *Checker) Check(ctx context.Context, ref string) (*Verdict, error) {
	if !registry.IsDigestReference(ref) {
		return nil, fmt.Errorf("host policy for %s: a digest reference is required", ref)
	}
	file := c.PolicyFile()
	if file == "" {
		return &Verdict{Allowed: true, Detail: "the host has no containers policy.json"}, nil
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

// Fingerprint changes whenever the policy file or registries.d changes, so
// a cached verdict is never reused under another policy.
func (c *Checker) Fingerprint() string {
	h := sha256.New()
	file := c.PolicyFile()
	data, _ := os.ReadFile(file)
	fmt.Fprintf(h, "policy %s %x\n", file, sha256.Sum256(data))
	for _, dir := range []string{c.under("/etc/containers/registries.d"), c.under("/usr/share/containers/registries.d")} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				fmt.Fprintf(h, "%s %x\n", p, sha256.Sum256(b))
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
