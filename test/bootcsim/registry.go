package bootcsim

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is go-containerregistry's in-process registry served over
// plain HTTP on 127.0.0.1, optionally behind basic auth. It stops when the
// test ends.
type Registry struct {
	Host     string // 127.0.0.1:port
	Username string
	Password string
}

// RegistryOptions configure NewRegistry.
type RegistryOptions struct {
	// Username and Password, when set, are required on every request
	// (HTTP basic auth, as `docker login` would use).
	Username, Password string
}

// NewRegistry starts a registry for the test.
func NewRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if opts.Username != "" || opts.Password != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != opts.Username || p != opts.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="bootcsim"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), Username: opts.Username, Password: opts.Password}
}

func (r *Registry) remoteOptions() []remote.Option {
	if r.Username == "" && r.Password == "" {
		return nil
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: r.Username, Password: r.Password})}
}

// Push uploads img as repo:tag and returns the digest-pinned reference
// Host/repo@sha256:….
func (r *Registry) Push(t testing.TB, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatalf("push %s: %v", repo, err)
	}
	if err := remote.Write(ref, img, r.remoteOptions()...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return r.Host + "/" + repo + "@" + d.String()
}

// PushIndex uploads idx as repo:tag and returns Host/repo@<index digest>.
func (r *Registry) PushIndex(t testing.TB, repo, tag string, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatalf("push %s: %v", repo, err)
	}
	if err := remote.WriteIndex(ref, idx, r.remoteOptions()...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return r.Host + "/" + repo + "@" + d.String()
}

// AuthJSON is a containers auth.json granting this registry's
// credentials, for <root>/etc/ostree/auth.json.
func (r *Registry) AuthJSON() []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))
	data, _ := json.Marshal(map[string]any{"auths": map[string]any{r.Host: map[string]string{"auth": auth}}})
	return data
}

// ImageOptions describe a small bootc-like test image.
type ImageOptions struct {
	Arch    string // default amd64
	Version string // org.opencontainers.image.version label
	Created string // org.opencontainers.image.created label (RFC 3339)
	Kernel  string // ostree.linux label
	// Etc is what the image ships under usr/etc: path relative to /etc →
	// content (mode 0644).
	Etc map[string]string
	// Marker makes otherwise identical images differ.
	Marker string
}

// Image builds a one-layer image with usr/etc content and labels.
func Image(t testing.TB, opts ImageOptions) v1.Image {
	t.Helper()
	img, err := BuildImage(opts)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// BuildImage is Image for programs outside tests (the demo).
func BuildImage(opts ImageOptions) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := map[string]string{"usr/lib/bootcsim-marker": opts.Marker}
	for p, c := range opts.Etc {
		files["usr/etc/"+p] = c
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		hdr := &tar.Header{Name: p, Mode: 0o644, Size: int64(len(files[p])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("build image: %w", err)
		}
		if _, err := io.WriteString(tw, files[p]); err != nil {
			return nil, fmt.Errorf("build image: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = opts.Arch
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	cf.Config.Labels = map[string]string{"containers.bootc": "1"}
	for k, v := range map[string]string{
		"org.opencontainers.image.version": opts.Version,
		"org.opencontainers.image.created": opts.Created,
		"ostree.linux":                     opts.Kernel,
	} {
		if v != "" {
			cf.Config.Labels[k] = v
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	return img, nil
}

// Index builds a multi-platform index of images (each image's config
// architecture becomes its platform).
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("build index: %v", err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture}},
		})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// Digest returns the manifest digest of img.
func Digest(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("image digest: %v", err)
	}
	return d.String()
}
