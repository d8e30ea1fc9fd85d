package ostreehost

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// KernelVersion is the kernel every test image ships (ostree needs one
// under usr/lib/modules to deploy a tree).
const KernelVersion = "6.1.0"

// ImageOptions describe a small bootable test image: a base layer shared
// by all images of a fleet and a layer of its own.
type ImageOptions struct {
	// Base are files of the shared base layer (path relative to / →
	// content), on top of the skeleton every image has (a kernel,
	// os-release, the directories ostree and the boot need).
	Base map[string]string
	// Version is the image's version (label org.opencontainers.image.version
	// and VERSION_ID in os-release).
	Version string
	// Etc is the image's own /etc (path relative to /etc → content); the
	// import moves it to /usr/etc, ostree's home for the image's defaults.
	Etc map[string]string
	// Files are other files of the image's own layer (relative to /).
	Files map[string]string
	// Whiteouts are paths (relative to /) the image's layer deletes from
	// the base layer with OCI whiteout entries (.wh.<name>).
	Whiteouts []string
}

// skeleton is what a bootc base image has at minimum for ostree: the
// toplevel directories and symlinks of an ostree root and a kernel.
var skeleton = []tarFile{
	{name: "boot", dir: true}, {name: "dev", dir: true}, {name: "proc", dir: true}, {name: "run", dir: true},
	{name: "sys", dir: true}, {name: "sysroot", dir: true}, {name: "tmp", dir: true, mode: 0o1777},
	{name: "var", dir: true}, {name: "root", dir: true, mode: 0o700}, {name: "etc", dir: true},
	{name: "usr", dir: true}, {name: "usr/bin", dir: true}, {name: "usr/sbin", dir: true},
	{name: "usr/lib", dir: true}, {name: "usr/lib64", dir: true},
	{name: "ostree", link: "sysroot/ostree"}, {name: "bin", link: "usr/bin"}, {name: "sbin", link: "usr/sbin"},
	{name: "lib", link: "usr/lib"}, {name: "lib64", link: "usr/lib64"},
	{name: "usr/lib/modules/" + KernelVersion + "/vmlinuz", data: "test kernel\n"},
	{name: "usr/lib/modules/" + KernelVersion + "/initramfs.img", data: "test initramfs\n"},
	{name: "etc/passwd", data: "root:x:0:0:root:/root:/bin/sh\n"},
	{name: "etc/group", data: "root:x:0:\n"},
}

type tarFile struct {
	name string
	data string
	dir  bool
	link string
	mode int64
}

// BuildImage builds a bootable test image.
func BuildImage(opts ImageOptions) (v1.Image, error) {
	base := append([]tarFile(nil), skeleton...)
	base = append(base, filesOf("", opts.Base)...)
	own := []tarFile{{name: "usr/lib/os-release", data: fmt.Sprintf("NAME=FakeOS\nID=fakeos\nVERSION_ID=%s\n", opts.Version)}}
	own = append(own, filesOf("etc/", opts.Etc)...)
	own = append(own, filesOf("", opts.Files)...)
	for _, p := range opts.Whiteouts {
		dir, file := path.Split(strings.TrimPrefix(p, "/"))
		own = append(own, tarFile{name: dir + ".wh." + file})
	}
	img := empty.Image
	for _, files := range [][]tarFile{base, own} {
		layer, err := layerOf(files)
		if err != nil {
			return nil, fmt.Errorf("build test image: %w", err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, fmt.Errorf("build test image: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("build test image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{"containers.bootc": "1", "ostree.bootable": "1"}
	if opts.Version != "" {
		cf.Config.Labels["org.opencontainers.image.version"] = opts.Version
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("build test image: %w", err)
	}
	return img, nil
}

// filesOf lists files (relative path → content) under prefix, with their
// parent directories.
func filesOf(prefix string, files map[string]string) []tarFile {
	var out []tarFile
	dirs := map[string]bool{}
	for p, content := range files {
		name := prefix + strings.TrimPrefix(p, "/")
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append(out, tarFile{name: d, dir: true})
		}
		out = append(out, tarFile{name: name, data: content})
	}
	return out
}

func layerOf(files []tarFile) (v1.Layer, error) {
	sort.SliceStable(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.name] {
			continue
		}
		seen[f.name] = true
		hdr := &tar.Header{Name: f.name, ModTime: time.Unix(0, 0), Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.dir:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
			hdr.Name += "/"
		case f.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode, hdr.Size = tar.TypeSymlink, f.link, 0o777, 0
		}
		if f.mode != 0 {
			hdr.Mode = f.mode
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}
