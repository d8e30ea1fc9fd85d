package hostspec

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // Git's object IDs, as a test double
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// TestDecodeCacheSharesWithoutChangingResults: two revisions loaded through
// one cache resolve every host as loads without it do, and a broken file
// reports the same problems, in each load.
func TestDecodeCacheSharesWithoutChangingResults(t *testing.T) {
	ctx := context.Background()
	base := generated(t, 60, 8).MapFS()
	head := fstest.MapFS{}
	for k, v := range base {
		head[k] = &fstest.MapFile{Data: bytes.Clone(v.Data), Mode: v.Mode}
	}
	head["fleet.yaml"].Data = bytes.Replace(head["fleet.yaml"].Data, []byte("Welcome to "), []byte("Hello from "), 1)
	cache := NewDecodeCache()
	for _, fsys := range []fstest.MapFS{base, head} {
		want, err := Load(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Load(ctx, fsys, WithDecodeCache(cache))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range want.HostNames() {
			w, werr := want.Resolve(ctx, n, nil)
			g, gerr := got.Resolve(ctx, n, nil)
			if werr != nil || gerr != nil || !reflect.DeepEqual(w, g) {
				t.Fatalf("host %s: with the cache %+v (%v), without %+v (%v)", n, g, gerr, w, werr)
			}
		}
	}
	docs := 0
	for k := range base {
		if k == FleetFile || (strings.HasSuffix(k, ".yaml") && (strings.HasPrefix(k, HostsDir+"/") || strings.HasPrefix(k, GroupsDir+"/"))) {
			docs++
		}
	}
	if len(cache.entries) > docs+1 { // only fleet.yaml differs
		t.Fatalf("%d cache entries for two revisions of %d documents differing in one", len(cache.entries), docs)
	}
	broken := head
	for k := range broken {
		if bytes.HasPrefix([]byte(k), []byte("hosts/")) {
			broken[k].Data = append(broken[k].Data, []byte("bogus: 1\n")...)
			break
		}
	}
	_, want := Load(ctx, broken)
	for range 2 {
		_, got := Load(ctx, broken, WithDecodeCache(cache))
		var wl, gl ErrorList
		if !errors.As(want, &wl) || !errors.As(got, &gl) || want.Error() != got.Error() {
			t.Fatalf("broken host file: with the cache %v, without %v", got, want)
		}
	}
}

// gitLikeFS lists entries with Git object IDs, as gitsource.TreeFS does,
// and counts the files opened for reading.
type gitLikeFS struct {
	fstest.MapFS
	opened map[string]int
}

type idEntry struct {
	fs.DirEntry
	id string
}

func (e idEntry) ObjectID() string { return e.id }

func (g *gitLikeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := g.MapFS.ReadDir(name)
	for i, de := range entries {
		if f := g.MapFS[path.Join(name, de.Name())]; f != nil && de.Type().IsRegular() {
			entries[i] = idEntry{de, fmt.Sprintf("0100644 %x", sha1.Sum(f.Data))}
		}
	}
	return entries, err
}

func (g *gitLikeFS) Open(name string) (fs.File, error) {
	if f := g.MapFS[name]; f != nil && f.Mode.IsRegular() {
		g.opened[name]++
	}
	return g.MapFS.Open(name)
}

// TestDecodeCacheReadsAGitObjectOnce: two revisions loaded through one
// cache read a host file with the same Git object ID once; a revision
// whose limits are lower still refuses the shared content.
func TestDecodeCacheReadsAGitObjectOnce(t *testing.T) {
	ctx := context.Background()
	base := generated(t, 20, 4).MapFS()
	first := "hosts/" + mustLoad(t, base).HostNames()[0] + ".yaml"
	base[first].Data = append(base[first].Data, strings.Repeat("# padding\n", 200)...)
	head := cloneMapFS(base)
	head["fleet.yaml"].Data = bytes.Replace(head["fleet.yaml"].Data, []byte("Welcome to "), []byte("Hello from "), 1)
	cache := NewDecodeCache()
	opened := map[string]int{}
	for _, m := range []fstest.MapFS{base, head} {
		listed := mustLoad(t, &gitLikeFS{MapFS: m, opened: opened}, WithHostFilesOnDemand())
		if _, err := listed.LoadHosts(ctx, listed.HostNames(), cache); err != nil {
			t.Fatal(err)
		}
	}
	for name, n := range opened {
		if strings.HasPrefix(name, HostsDir+"/") && n != 1 {
			t.Errorf("%s read %d times by the two revisions, want once", name, n)
		}
	}
	small := cloneMapFS(head)
	small["fleet.yaml"].Data = append(small["fleet.yaml"].Data, []byte("limits:\n  documentSize: 1000\n")...)
	listed := mustLoad(t, &gitLikeFS{MapFS: small, opened: map[string]int{}}, WithHostFilesOnDemand())
	_, err := listed.LoadHosts(ctx, listed.HostNames()[:1], cache)
	if e := findProblem(t, err, first, 0, "", "larger than limits.documentSize = 1000 bytes"); e.Limit != "documentSize" {
		t.Fatalf("limit = %q", e.Limit)
	}
}

func cloneMapFS(m fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = &fstest.MapFile{Data: bytes.Clone(v.Data), Mode: v.Mode}
	}
	return out
}
