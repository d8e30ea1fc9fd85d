// Package hostpolicy evaluates a host's own containers-policy.json for the
// exact image bootc will be given, with containers/image's signature
// package and docker transport: the same code, policy file, registries.d
// (use-sigstore-attachments) and registries.conf mirrors bootc's pull uses.
// The agent runs it before staging anything, so an image that passes
// bootsync's gate but that bootc would refuse (for example one signed only
// with a cosign v3 bundle, which containers/image cannot verify) is refused
// early, with reason "host-policy", instead of failing inside `bootc switch`.
//
// Evaluating needs the build tag containers_image_openpgp (containers/image
// otherwise links libgpgme through cgo); the Makefile and .ci/run set it.
// Built without it, the package still compiles, so that plain `go build`
// and `go vet` work, but Check fails closed on any host that has a
// policy.json: nothing is staged that the host's policy was not asked about.
package hostpolicy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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

// policyFor is where Check starts, in either build: ref must be a digest
// reference, and a host without a policy.json gets its verdict at once
// (file is then "").
func (c *Checker) policyFor(ref string) (file string, v *Verdict, err error) {
	if !registry.IsDigestReference(ref) {
		return "", nil, fmt.Errorf("host policy for %s: a digest reference is required", ref)
	}
	if file = c.PolicyFile(); file == "" {
		return "", &Verdict{Allowed: true, Detail: "the host has no containers policy.json"}, nil
	}
	return file, nil, nil
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
