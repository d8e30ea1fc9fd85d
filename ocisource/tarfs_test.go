package ocisource

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
)

// gitTree commits files (and links, made with ln -s) and returns the
// commit's tree.
func gitTree(t *testing.T, files map[string]string, links map[string]string, exec []string) (*gittest.Repo, gitsource.FS) {
	t.Helper()
	bare := t.TempDir()
	gittest.Git(t, bare, nil, "init", "-q", "--bare")
	repo := gittest.NewRepo(t, bare)
	repo.Write(files)
	for link, target := range links {
		p := filepath.Join(repo.Dir, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range exec {
		if err := os.Chmod(filepath.Join(repo.Dir, x), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repo.Commit("tree", nil)
	return repo, revisionFS(t, repo.Dir, "HEAD")
}

func revisionFS(t *testing.T, dir, rev string) gitsource.FS {
	t.Helper()
	local, err := gitsource.OpenLocal(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := local.Revision(context.Background(), rev)
	if err != nil {
		t.Fatal(err)
	}
	return r.FS
}

// packed packs fsys and opens the result as an FS, the way the agent does.
func packed(t *testing.T, fsys gitsource.FS) (*FS, []byte) {
	t.Helper()
	var gz bytes.Buffer
	if err := Pack(&gz, fsys); err != nil {
		t.Fatal(err)
	}
	f, err := openTarBytes(t, gunzip(t, gz.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return f, gz.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openTarBytes(t *testing.T, tarball []byte) (*FS, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "content.tar")
	if err := os.WriteFile(p, tarball, 0o600); err != nil {
		t.Fatal(err)
	}
	return OpenTar(p, time.Unix(1700000000, 0))
}

// describeTree lists every path of fsys with what Lstat, ReadLink, ReadFile
// and Stat say about it, so two file systems can be compared.
func describeTree(t *testing.T, fsys gitsource.FS) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			out = append(out, p+" walk: "+err.Error())
			return nil
		}
		fi, err := fsys.Lstat(p)
		if err != nil {
			out = append(out, p+" lstat: "+err.Error())
			return nil
		}
		line := p + " " + fi.Mode().String() + " " + d.Type().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := fsys.ReadLink(p)
			line += " -> " + target
			if b, err := fsys.ReadFile(p); err != nil {
				line += " read: " + strings.TrimPrefix(err.Error(), "read "+p+": ")
			} else {
				line += " content " + string(b)
			}
		case fi.Mode().IsRegular():
			b, err := fsys.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			line += " content " + string(b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The artifact is the commit's tree: the same paths, modes, contents and
// links, links that leave the tree refused the same way.
func TestPackedArtifactReadsLikeTheGitTree(t *testing.T) {
	_, tree := gitTree(t, map[string]string{
		"fleet.yaml":         "kind: Fleet\n",
		"files/etc/motd":     "hello\n",
		"files/bin/run.sh":   "#!/bin/sh\n",
		"hosts/web-01.yaml":  "kind: Host\n",
		"a-b/x":              "dash sorts before slash\n",
		"a/deep/er/file.txt": "deep\n",
	}, map[string]string{
		"files/etc/issue":  "motd",
		"files/up":         "../fleet.yaml",
		"files/escape":     "../../outside",
		"files/absolute":   "/etc/shadow",
		"files/dirlink":    "etc",
		"files/loop":       "loop",
		"files/through/it": "x",
	}, []string{"files/bin/run.sh"})
	art, _ := packed(t, tree)
	want, got := describeTree(t, tree), describeTree(t, art)
	if !slices.Equal(want, got) {
		t.Fatalf("the artifact differs from the Git tree:\ngit:\n%s\nartifact:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	for _, link := range []string{"files/escape", "files/absolute"} {
		if _, err := art.ReadFile(link); !errors.Is(err, gitsource.ErrSymlinkEscapes) {
			t.Errorf("read %s = %v, want ErrSymlinkEscapes", link, err)
		}
	}
	if fi, err := art.Stat("files/bin/run.sh"); err != nil || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("run.sh: %v %v, want mode 0755 and the commit time", fi, err)
	}
	// A subtree sees only itself.
	sub, err := art.Subtree("files")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.ReadFile("up"); !errors.Is(err, gitsource.ErrSymlinkEscapes) {
		t.Errorf("in the subtree files/, up -> ../fleet.yaml = %v, want ErrSymlinkEscapes", err)
	}
	if b, err := sub.ReadFile("etc/issue"); err != nil || string(b) != "hello\n" {
		t.Errorf("subtree etc/issue = %q, %v", b, err)
	}
	if _, err := art.ReadFileLimit("fleet.yaml", 3); !errors.As(err, new(*boundedread.TooLargeError)) {
		t.Errorf("ReadFileLimit over the limit = %v, want TooLargeError", err)
	}
}

// The real example fleet renders the same for every host from Git and from
// its artifact: downstream cannot tell them apart.
func TestExampleFleetRendersTheSameFromTheArtifact(t *testing.T) {
	files := map[string]string{}
	root := filepath.Join("..", "examples", "fleet")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, tree := gitTree(t, files, nil, nil)
	art, _ := packed(t, tree)
	render := func(fsys fs.FS) map[string]string {
		repo, err := hostspec.Load(context.Background(), fsys, hostspec.WithRevision("c0ffee"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, h := range repo.HostNames() {
			spec, err := repo.Resolve(context.Background(), h, nil)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, e := range spec.Etc {
				b.WriteString(e.Path + " " + e.Mode.String() + "\n" + string(e.Content) + "\n")
			}
			out[h] = spec.Image.Ref + "\n" + b.String()
		}
		return out
	}
	fromGit, fromArt := render(tree), render(art)
	if len(fromGit) == 0 {
		t.Fatal("no hosts in examples/fleet")
	}
	for h, want := range fromGit {
		if fromArt[h] != want {
			t.Errorf("host %s renders differently from the artifact:\ngit:\n%s\nartifact:\n%s", h, want, fromArt[h])
		}
	}
}

// The same tree packs to the same bytes, whatever the commit time.
func TestPackIsDeterministic(t *testing.T) {
	files := map[string]string{"fleet.yaml": "kind: Fleet\n", "hosts/a.yaml": "a\n", "hosts/b.yaml": "b\n"}
	repo, first := gitTree(t, files, nil, nil)
	time.Sleep(1100 * time.Millisecond) // another committer second
	repo.Commit("same tree again", nil)
	second := revisionFS(t, repo.Dir, "HEAD")
	_, a := packed(t, first)
	_, b := packed(t, second)
	_, c := packed(t, first)
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
}

// tarEntry is one crafted tar entry.
type tarEntry struct {
	hdr  tar.Header
	data string
}

func craft(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if h.Size == 0 && h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.data != "" {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func dirE(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}}
}

func fileE(name, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: data}
}

// Whatever a hostile or broken artifact holds, nothing of it is used: each
// of these is refused as a whole, naming the entry.
func TestHostileContentIsRefused(t *testing.T) {
	cases := map[string][]tarEntry{
		"path traversal":       {fileE("../evil", "x")},
		"absolute path":        {dirE("etc"), fileE("/etc/passwd", "x")},
		"dot element":          {fileE("./fleet.yaml", "x")},
		"empty element":        {dirE("a"), fileE("a//b", "x")},
		"dot-dot inside":       {dirE("a"), fileE("a/../../b", "x")},
		"duplicate file":       {fileE("fleet.yaml", "a"), fileE("fleet.yaml", "b")},
		"file replaced by dir": {fileE("a", "x"), dirE("a")},
		"file before its dir":  {fileE("a/b", "x"), dirE("a")},
		"file used as a dir":   {fileE("a", "x"), fileE("a/b", "y")},
		"out of order":         {fileE("b", "x"), fileE("a", "y")},
		"hard link":            {fileE("a", "x"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "b", Linkname: "a", Mode: 0o644}}},
		"character device":     {{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o644, Devmajor: 1, Devminor: 3}}},
		"fifo":                 {{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe", Mode: 0o644}}},
		"set-user-ID file":     {{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "su", Mode: 0o4755}, data: "x"}},
		"world-writable file":  {{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "w", Mode: 0o666}, data: "x"}},
		"odd directory mode":   {{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o777}}},
		"link without target":  {{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Mode: 0o777}}},
		"extended attributes":  {{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "x", Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.security.selinux": "x"}}, data: "x"}},
		"global header":        {{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"comment": "x"}}}},
		"too deep":             deepEntries(maxDepth + 1),
		"not a tar":            nil,
		"gnu sparse file":      {{hdr: tar.Header{Typeflag: tar.TypeGNUSparse, Name: "s", Mode: 0o644, Format: tar.FormatGNU}}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			var tarball []byte
			if entries == nil {
				tarball = bytes.Repeat([]byte("garbage!"), 200)
			} else {
				if tarball = craftLenient(t, entries); tarball == nil {
					t.Fatal("test setup: archive/tar refuses to write this header")
				}
			}
			_, err := openTarBytes(t, tarball)
			var ic *InvalidContentError
			if !errors.As(err, &ic) {
				t.Fatalf("opened: err = %v, want InvalidContentError", err)
			}
			if ReasonOf(err) != ReasonInvalidArtifact {
				t.Errorf("reason %q", ReasonOf(err))
			}
		})
	}
}

// A PAX sparse file (which archive/tar expands on reading, so its content
// is not where the header says) is refused: archive/tar will not write one,
// so a PAX record written by it is renamed in place.
func TestPAXSparseFileIsRefused(t *testing.T) {
	tarball := craft(t, tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "s", Mode: 0o644,
		PAXRecords: map[string]string{"comment": "0123456789abcdefghij"}}, data: "x"})
	// "31 comment=0123456789abcdefghij\n" -> "31 GNU.sparse.major=12345678901\n"
	old := []byte("comment=0123456789abcdefghij\n")
	repl := []byte("GNU.sparse.major=12345678901\n")
	if len(old) != len(repl) || !bytes.Contains(tarball, old) {
		t.Fatalf("test setup: record not found or lengths differ (%d, %d)", len(old), len(repl))
	}
	_, err := openTarBytes(t, bytes.Replace(tarball, old, repl, 1))
	var ic *InvalidContentError
	if !errors.As(err, &ic) {
		t.Fatalf("opened: %v, want InvalidContentError", err)
	}
}

// craftLenient is craft for headers archive/tar may refuse to write; it
// returns nil then.
func craftLenient(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil
		}
		if h.Typeflag == tar.TypeReg && e.data != "" {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				return nil
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil
	}
	return b.Bytes()
}

func deepEntries(depth int) []tarEntry {
	var out []tarEntry
	p := ""
	for i := 0; i < depth; i++ {
		if p != "" {
			p += "/"
		}
		p += "d"
		out = append(out, dirE(p))
	}
	return append(out, fileE(p+"/f", "x"))
}

// What Pack writes is accepted; a valid hand-made tar in the same form is
// too (the format is the contract, not the writer).
func TestWellFormedContentIsAccepted(t *testing.T) {
	f, err := openTarBytes(t, craft(t, dirE("a"), fileE("a/b", "bee"),
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "a/c", Linkname: "b", Mode: 0o777}},
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "run", Mode: 0o755}, data: "#!"}))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := f.ReadFile("a/c"); err != nil || string(b) != "bee" {
		t.Fatalf("a/c = %q, %v", b, err)
	}
}
