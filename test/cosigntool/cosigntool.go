// Package cosigntool finds and runs the real cosign binaries used by the
// interop tests: v2.6.5 (tag-based signatures by default) and v3.1.3
// (Sigstore bundles by default). They are built with `go install` by
// .ci/run into $HOME/.cache/bootsync/tools/cosign-<version>/cosign, or
// named by $BOOTSYNC_COSIGN2 / $BOOTSYNC_COSIGN3. Every command runs offline:
// no transparency log upload, and a private HOME so no user state leaks in.
package cosigntool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Versions the project tests against.
const (
	V2 = "v2.6.5"
	V3 = "v3.1.3"
)

// Cosign is one cosign binary.
type Cosign struct {
	Path    string
	Version string
	home    string
}

func envVar(version string) string {
	if strings.HasPrefix(version, "v3") {
		return "BOOTSYNC_COSIGN3"
	}
	return "BOOTSYNC_COSIGN2"
}

// Find locates cosign version: $BOOTSYNC_COSIGN2 / $BOOTSYNC_COSIGN3, else
// $HOME/.cache/bootsync/tools/cosign-<version>/cosign.
func Find(version string) (*Cosign, error) {
	if version != V2 && version != V3 {
		return nil, fmt.Errorf("cosign %s: only %s and %s are supported", version, V2, V3)
	}
	path := os.Getenv(envVar(version))
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("find cosign %s: %w", version, err)
		}
		path = filepath.Join(home, ".cache/bootsync/tools/cosign-"+version, "cosign")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cosign %s not found at %s (set %s or run .ci/run to build it): %w", version, path, envVar(version), err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("cosign %s at %s is not an executable file", version, path)
	}
	return &Cosign{Path: path, Version: version}, nil
}

// Require returns cosign version for a test. When it is missing the test
// fails if CI=true (CI must run the interop tests) and is skipped otherwise.
func Require(t testing.TB, version string) *Cosign {
	t.Helper()
	c, err := Find(version)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop test needs real cosign: %v", err)
		}
		t.Skipf("interop test needs real cosign (fails instead of skipping when CI=true): %v", err)
	}
	c.home = t.TempDir()
	return c
}

// Run runs cosign with args and extra environment (e.g. COSIGN_PASSWORD=…)
// and returns its combined output; a non-zero exit is an error that
// includes the output.
func (c *Cosign) Run(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Env = append(os.Environ(), env...)
	if c.home != "" {
		// A private HOME keeps cosign's TUF cache and config out of the
		// user's; the TUF root is never fetched by key-based offline use.
		cmd.Env = append(cmd.Env, "HOME="+c.home, "TUF_ROOT="+filepath.Join(c.home, "tuf"))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("cosign %s %s: %w\n%s", c.Version, strings.Join(args, " "), err, out.String())
	}
	return out.Bytes(), nil
}

// GenerateKeyPair runs `cosign generate-key-pair` in dir and returns the
// paths of the encrypted private key and the PEM public key.
func (c *Cosign) GenerateKeyPair(ctx context.Context, dir, prefix, password string) (key, pub string, err error) {
	cmd := []string{"generate-key-pair", "--output-key-prefix", filepath.Join(dir, prefix)}
	if _, err := c.Run(ctx, []string{"COSIGN_PASSWORD=" + password}, cmd...); err != nil {
		return "", "", err
	}
	key, pub = filepath.Join(dir, prefix+".key"), filepath.Join(dir, prefix+".pub")
	for _, p := range []string{key, pub} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("cosign generate-key-pair did not write %s: %w", p, err)
		}
	}
	return key, pub, nil
}

// Format selects the signature format Sign writes.
type Format int

const (
	// Default is the version's default: tag-based for v2, bundle for v3.
	Default Format = iota
	// Legacy is the tag-based format (v3: --new-bundle-format=false).
	Legacy
)

// Sign signs ref (a digest reference on a plain-HTTP 127.0.0.1 registry)
// with key, without any transparency log upload.
func (c *Cosign) Sign(ctx context.Context, key, password, ref string, format Format) error {
	args := []string{"sign", "--key", key, "--allow-http-registry", "--allow-insecure-registry", "-y"}
	switch {
	case c.Version == V2:
		if format != Default && format != Legacy {
			return errors.New("cosign v2: unknown format")
		}
		args = append(args, "--tlog-upload=false")
	case format == Legacy:
		args = append(args, "--new-bundle-format=false", "--use-signing-config=false", "--tlog-upload=false")
	default:
		// v3 refuses --tlog-upload=false with its default signing config;
		// a signing config without Rekor or TSA signs offline.
		cfg := filepath.Join(c.tempDir(), "no-tlog-signing-config.json")
		if err := os.WriteFile(cfg, []byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{},"tsaConfig":{}}`), 0o644); err != nil {
			return err
		}
		args = append(args, "--signing-config", cfg)
	}
	_, err := c.Run(ctx, []string{"COSIGN_PASSWORD=" + password}, append(args, ref)...)
	return err
}

// Verify runs `cosign verify --key pub` on ref offline and returns its output.
func (c *Cosign) Verify(ctx context.Context, pub, ref string, extra ...string) ([]byte, error) {
	args := append([]string{"verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry"}, extra...)
	return c.Run(ctx, nil, append(args, ref)...)
}

func (c *Cosign) tempDir() string {
	if c.home != "" {
		return c.home
	}
	return os.TempDir()
}
