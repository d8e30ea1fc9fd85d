package hostspec

import (
	"bytes"
	"context"
	"errors"
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
