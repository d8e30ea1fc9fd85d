package standin

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bootsync/bootsync/apply/bootc"
)

// imageRefPrefix is where ostree-ext keeps one ref per imported image.
const imageRefPrefix = "ostree/container/image/"

// Imported is an image in the sysroot's repository.
type Imported struct {
	Checksum string // the ostree commit
	Digest   string // the manifest digest bootc reports
	Version  *string
	// Downloaded: layers were fetched (false when the digest was already
	// in the repository).
	Downloaded bool
}

// Importer pulls images from a registry into the sysroot's repository the
// way bootc's ostree-ext importer does: layers applied in order with OCI
// whiteouts, /etc moved to /usr/etc, one commit carrying the manifest and
// config in its metadata.
type Importer struct {
	Sysroot  Sysroot
	Insecure []string // registries (host:port) reached over plain HTTP
	// Requests and Blobs count registry requests and blob downloads.
	Requests, Blobs atomic.Int64
}

// countingTransport counts requests, refuses plain HTTP to registries not
// configured as insecure (containers/image never falls back to HTTP), and
// counts blob fetches.
type countingTransport struct{ im *Importer }

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !slices.Contains(t.im.Insecure, req.URL.Host) {
		return nil, fmt.Errorf("pinging container registry %s: plain HTTP refused: not configured as an insecure registry", req.URL.Host)
	}
	t.im.Requests.Add(1)
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
		t.im.Blobs.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// Pull imports ref (registry transport) unless its manifest digest is
// already in the repository; either way it returns the commit to deploy.
func (im *Importer) Pull(ctx context.Context, st *State, ref bootc.ImageReference) (*Imported, error) {
	if ref.Transport != bootc.TransportRegistry {
		return nil, fmt.Errorf("the ostree test host pulls from registries only, not %q", ref.Transport)
	}
	var opts []name.Option
	r, err := name.ParseReference(ref.Image, name.StrictValidation)
	if err == nil && slices.Contains(im.Insecure, r.Context().RegistryStr()) {
		opts = append(opts, name.Insecure)
		r, err = name.ParseReference(ref.Image, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref.Image, err)
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(countingTransport{im}),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithUserAgent("bootc/ostreehost"),
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("failed to invoke method OpenImage: %w", err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("choosing the image for linux/%s: %w", runtime.GOARCH, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	imageRef := imageRefPrefix + escapeRef("docker://"+ref.Image)
	if have := st.imageByDigest(digest.String()); have != nil {
		// Already imported: nothing to download. Keep a ref under this
		// name too, so pruning sees the image as wanted.
		if have.Ref != imageRef {
			if _, err := im.Sysroot.ostree(ctx, "refs", "--repo="+im.Sysroot.Repo(), "--create="+imageRef, have.Checksum); err != nil {
				return nil, err
			}
		}
		return &Imported{Checksum: have.Checksum, Digest: digest.String()}, nil
	}
	return im.importImage(ctx, img, digest.String(), imageRef)
}

func (im *Importer) importImage(ctx context.Context, img v1.Image, digest, imageRef string) (*Imported, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("fetching manifest %s: %w", digest, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("fetching config of %s: %w", digest, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("parsing config of %s: %w", digest, err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(im.Sysroot.Repo(), "tmp"), "bootc-import-")
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", digest, err)
	}
	defer os.RemoveAll(tmp)
	tarPath := filepath.Join(tmp, "rootfs.tar")
	if err := writeOstreeTar(img, tarPath); err != nil {
		return nil, fmt.Errorf("importing %s: %w", digest, err)
	}
	args := []string{"commit", "--repo=" + im.Sysroot.Repo(), "--branch=" + imageRef,
		"--tree=tar=" + tarPath, "--tar-autocreate-parents", "--bootable", "--no-bindings",
		"--add-metadata-string=" + metaManifestDigest + "=" + digest,
		"--add-metadata-string=" + metaManifest + "=" + string(manifest),
		"--add-metadata-string=" + metaImageConfig + "=" + string(rawCfg),
	}
	out := &Imported{Digest: digest, Downloaded: true}
	for _, label := range []string{"org.opencontainers.image.version", "version"} {
		if v, ok := cfg.Config.Labels[label]; ok {
			out.Version = &v
			args = append(args, "--add-metadata-string=version="+v)
			break
		}
	}
	if !cfg.Created.IsZero() {
		args = append(args, "--timestamp="+cfg.Created.UTC().Format("2006-01-02T15:04:05Z"))
	}
	csum, err := im.Sysroot.ostree(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", digest, err)
	}
	out.Checksum = strings.TrimSpace(string(csum))
	return out, nil
}

// escapeRef makes s usable in an ostree ref the way ostree-ext's
// refescape does: alphanumerics, '.' and '-' stay, '_' doubles, anything
// else becomes _XX_.
func escapeRef(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		case c == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%02X_", c)
		}
	}
	return b.String()
}

// Top-level directories whose image content ostree-ext does not commit
// (API filesystems and /var, which belongs to the stateroot).
var contentDropped = []string{"dev", "proc", "sys", "run", "tmp", "var"}

// ostreePath maps an image path to the committed one: /etc moves to
// /usr/etc; "" drops the entry.
func ostreePath(p string) string {
	p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/"))
	if p == "." || p == "" {
		return ""
	}
	// Images encoded from ostree commits ship usr/etc already; both
	// forms end up in usr/etc.
	top, _, nested := strings.Cut(p, "/")
	switch {
	case top == "etc":
		return "usr/" + p
	case nested && slices.Contains(contentDropped, top):
		return ""
	}
	return p
}

// tarEntry is one flattened-image entry with its content.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// writeOstreeTar flattens img (mutate.Extract applies whiteouts and
// opaque directories) and writes it as a tar ostree can commit: paths
// mapped by ostreePath, parents before children, hard links last.
func writeOstreeTar(img v1.Image, dst string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	var entries []tarEntry
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layers: %w", err)
		}
		p := ostreePath(hdr.Name)
		if p == "" {
			continue
		}
		hdr.Name = p
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = ostreePath(hdr.Linkname)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		entries = append(entries, tarEntry{hdr: hdr, data: data})
	}
	slices.SortStableFunc(entries, func(a, b tarEntry) int {
		if la, lb := a.hdr.Typeflag == tar.TypeLink, b.hdr.Typeflag == tar.TypeLink; la != lb {
			if la {
				return 1
			}
			return -1
		}
		return strings.Compare(a.hdr.Name, b.hdr.Name)
	})
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", e.hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
