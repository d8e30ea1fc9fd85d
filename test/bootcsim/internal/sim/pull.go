package sim

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/apply/bootc"
)

// Image config labels bootc reads.
const (
	labelVersion       = "org.opencontainers.image.version"
	labelLegacyVersion = "version"
	labelCreated       = "org.opencontainers.image.created"
	labelKernel        = "ostree.linux"
)

// pulledImage is what a pull learned about an image.
type pulledImage struct {
	Digest       string // manifest digest of the platform image
	Architecture string
	Version      *string
	Timestamp    *string
	Kernel       string
	Etc          map[string]EtcFile // usr/etc; nil when layers were not read
}

// authFiles are where bootc reads registry credentials, in order
// (docs/src/building/secrets.md), relative to the host root.
var authFiles = []string{"etc/ostree/auth.json", "run/ostree/auth.json", "usr/lib/ostree/auth.json"}

// pull fetches ref's manifest and config for the simulated architecture
// and, with layers, reads the image's usr/etc. Like bootc it honours the
// host's ostree auth file and reaches plain-HTTP registries only when they
// are configured as insecure.
func (inv *invocation) pull(ref bootc.ImageReference, arch string, layers bool) (*pulledImage, error) {
	if ref.Transport != bootc.TransportRegistry {
		return nil, fmt.Errorf("bootcsim simulates the registry transport only, not %q", ref.Transport)
	}
	inv.pulled = true
	// Like containers/image, try registries.conf mirrors first, then the
	// primary; the first endpoint that has the manifest serves the pull.
	sources, err := pullSources(inv.cfg.Root, ref.Image)
	if err != nil {
		return nil, err
	}
	var desc *remote.Descriptor
	var errs []error
	for _, src := range sources {
		if desc, err = inv.getManifest(src, arch); err == nil {
			break
		}
		errs = append(errs, err)
	}
	if desc == nil {
		return nil, errors.Join(errs...)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("choosing image instance for linux/%s: %w", arch, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("computing manifest digest: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("fetching config for %s: %w", digest, err)
	}
	out := &pulledImage{Digest: digest.String(), Architecture: cfg.Architecture}
	if out.Architecture == "" {
		out.Architecture = arch
	}
	labels := cfg.Config.Labels
	if v, ok := labels[labelVersion]; ok {
		out.Version = &v
	} else if v, ok := labels[labelLegacyVersion]; ok {
		out.Version = &v
	}
	if ts, ok := labels[labelCreated]; ok {
		out.Timestamp = &ts
	} else if !cfg.Created.IsZero() {
		ts := cfg.Created.UTC().Format(time.RFC3339Nano)
		out.Timestamp = &ts
	}
	out.Kernel = labels[labelKernel]
	if layers {
		if out.Etc, err = imageEtc(img); err != nil {
			return nil, fmt.Errorf("importing %s: %w", digest, err)
		}
	}
	return out, nil
}

// getManifest fetches src's manifest for the simulated architecture. Plain
// HTTP only to registries configured as insecure (BOOTCSIM_INSECURE_REGISTRIES
// or registries.conf).
func (inv *invocation) getManifest(src pullSource, arch string) (*remote.Descriptor, error) {
	r, err := name.ParseReference(src.ref)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", src.ref, err)
	}
	insecure := append([]string(nil), inv.cfg.Insecure...)
	if src.insecure {
		insecure = append(insecure, r.Context().RegistryStr())
	}
	if slices.Contains(insecure, r.Context().RegistryStr()) {
		if r, err = name.ParseReference(src.ref, name.Insecure); err != nil {
			return nil, fmt.Errorf("parsing image reference %q: %w", src.ref, err)
		}
	}
	keychain, err := inv.keychain()
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{
		remote.WithContext(inv.ctx),
		remote.WithAuthFromKeychain(keychain),
		remote.WithTransport(&tlsOnlyTransport{base: http.DefaultTransport, insecure: insecure}),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}),
		remote.WithUserAgent("bootc/bootcsim"),
		// bootc retries a failed pull a few times; keep that short here.
		remote.WithRetryBackoff(remote.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 2}),
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to invoke method OpenImage: reading manifest %s in %s: %w", r.Identifier(), r.Context().Name(), err)
	}
	return desc, nil
}

// imageEtc reads the flattened image and returns its default /etc, keyed
// by the path relative to /etc. Container images ship it as /etc, which
// bootc's import moves to /usr/etc (ostree's home for it); images encoded
// from ostree commits already have usr/etc. Both are read, as bootc does.
func imageEtc(img v1.Image) (map[string]EtcFile, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]EtcFile{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading layers: %w", err)
		}
		p := strings.TrimPrefix(path.Clean(strings.TrimPrefix(hdr.Name, "./")), "/")
		rel, ok := strings.CutPrefix(p, "usr/etc/")
		if !ok {
			rel, ok = strings.CutPrefix(p, "etc/")
		}
		if !ok || rel == "" {
			continue
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		uid, gid := imageOwner(hdr.Uid, hdr.Gid)
		switch hdr.Typeflag {
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
			}
			files[rel] = EtcFile{Mode: mode, UID: uid, GID: gid, Data: data}
		case tar.TypeSymlink:
			files[rel] = EtcFile{Mode: 0o777, UID: uid, GID: gid, Link: hdr.Linkname}
		}
	}
}

// keychain serves credentials from the first ostree auth file under the
// simulated root, parsed as the containers auth.json it is.
func (inv *invocation) keychain() (authn.Keychain, error) {
	for _, rel := range authFiles {
		p := filepath.Join(inv.cfg.Root, rel)
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", p, err)
		}
		cf, err := config.LoadFromReader(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		return authFileKeychain{cf: cf}, nil
	}
	return authn.NewMultiKeychain(), nil
}

// authFileKeychain looks a registry up in an auth.json the way
// containers/image does: by repository, then by registry host.
type authFileKeychain struct{ cf *configfile.ConfigFile }

func (k authFileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	for _, key := range []string{target.String(), target.RegistryStr()} {
		ac, err := k.cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("reading credentials for %s: %w", key, err)
		}
		if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			return authn.FromConfig(authn.AuthConfig{
				Username:      ac.Username,
				Password:      ac.Password,
				Auth:          ac.Auth,
				IdentityToken: ac.IdentityToken,
				RegistryToken: ac.RegistryToken,
			}), nil
		}
	}
	return authn.Anonymous, nil
}

// tlsOnlyTransport refuses plain HTTP to registries not configured as
// insecure: go-containerregistry falls back to HTTP for 127.0.0.1 on its
// own, but bootc (containers/image) never does.
type tlsOnlyTransport struct {
	base     http.RoundTripper
	insecure []string
}

func (t *tlsOnlyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !slices.Contains(t.insecure, req.URL.Host) {
		return nil, fmt.Errorf("pinging container registry %s: plain HTTP refused: %s is not configured as an insecure registry", req.URL.Host, req.URL.Host)
	}
	return t.base.RoundTrip(req)
}

// policyRefusesEnforcement mirrors bootc's guard for
// --enforce-container-sigpolicy: a containers-policy.json whose default is
// only insecureAcceptAnything is refused. A host root without a policy
// file is accepted (the simulator does not verify signatures; bootsync
// does that itself before switching).
func (inv *invocation) policyRefusesEnforcement() error {
	for _, rel := range []string{"etc/containers/policy.json", "usr/share/containers/policy.json"} {
		data, err := os.ReadFile(filepath.Join(inv.cfg.Root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading /%s: %w", rel, err)
		}
		var policy struct {
			Default []struct {
				Type string `json:"type"`
			} `json:"default"`
		}
		if err := json.Unmarshal(data, &policy); err != nil {
			return fmt.Errorf("parsing /%s: %w", rel, err)
		}
		if len(policy.Default) == 1 && policy.Default[0].Type == "insecureAcceptAnything" {
			return errors.New("containers-policy.json specifies a default of `insecureAcceptAnything`; refusing usage")
		}
		return nil
	}
	return nil
}
