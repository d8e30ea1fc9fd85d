package registry_test

import (
	"strings"
	"testing"

	"github.com/bootsync/bootsync/registry"
)

func TestLockImagesResolvesTagsOnly(t *testing.T) {
	tr := newTestRegistry(t)
	base, _ := tr.PushRandom("os/base", "stable")
	next, _ := tr.PushRandom("os/base", "next")
	pinned, _ := tr.PushRandom("os/edge", "v1")
	c := newClient(t)
	refs := []string{
		tr.Host + "/os/base:stable",
		tr.Host + "/os/base:next",
		tr.Host + "/os/base:stable", // used by several hosts: resolved once
		tr.Host + "/os/edge@" + pinned,
	}
	tr.Reset()
	lock, err := registry.LockImages(ctx(t), c, refs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{tr.Host + "/os/base:stable": base, tr.Host + "/os/base:next": next}
	if len(lock) != len(want) || lock[tr.Host+"/os/base:stable"] != base || lock[tr.Host+"/os/base:next"] != next {
		t.Fatalf("lock = %v, want %v", lock, want)
	}
	if n := tr.Count("HEAD", "/v2/os/base/manifests/stable"); n != 1 {
		t.Fatalf("a tag used twice was resolved %d times", n)
	}
	if n := tr.Count("", "/v2/os/edge/"); n != 0 {
		t.Fatalf("a digest reference caused %d requests", n)
	}
}

func TestLockImagesReportsEveryFailure(t *testing.T) {
	tr := newTestRegistry(t)
	tr.PushRandom("os/base", "stable")
	c := newClient(t)
	_, err := registry.LockImages(ctx(t), c, []string{tr.Host + "/os/base:gone", tr.Host + "/os/base:stable", "not a ref", tr.Host + "/os/other:gone"})
	if err == nil {
		t.Fatal("missing tags must fail the lock")
	}
	for _, want := range []string{"os/base:gone: not-found", "os/other:gone: not-found", `"not a ref"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error should mention %q: %v", want, err)
		}
	}
}

func TestCheckLockFindsStaleMissingAndExtra(t *testing.T) {
	tr := newTestRegistry(t)
	old, _ := tr.PushRandom("os/base", "stable")
	edge, _ := tr.PushRandom("os/edge", "v1")
	c := newClient(t)
	stableRef, edgeRef := tr.Host+"/os/base:stable", tr.Host+"/os/edge:v1"
	locked := map[string]string{stableRef: old, edgeRef: edge}

	rep, err := registry.CheckLock(ctx(t), c, []string{stableRef, edgeRef}, locked)
	if err != nil || !rep.UpToDate() {
		t.Fatalf("fresh lock: report %+v, err %v; want up to date", rep, err)
	}

	moved, _ := tr.PushRandom("os/base", "stable")
	newRef := tr.Host + "/os/new:1"
	newDigest, _ := tr.PushRandom("os/new", "1")
	rep, err = registry.CheckLock(ctx(t), c, []string{stableRef, newRef}, locked)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UpToDate() {
		t.Fatal("a moved tag, a new tag and an unused entry: the lock is stale")
	}
	if len(rep.Stale) != 1 || rep.Stale[0] != (registry.LockChange{Ref: stableRef, Locked: old, Current: moved}) {
		t.Errorf("stale = %+v", rep.Stale)
	}
	if len(rep.Missing) != 1 || rep.Missing[0] != (registry.LockChange{Ref: newRef, Current: newDigest}) {
		t.Errorf("missing = %+v", rep.Missing)
	}
	if len(rep.Extra) != 1 || rep.Extra[0] != edgeRef {
		t.Errorf("extra = %+v", rep.Extra)
	}
	text := rep.String()
	for _, want := range []string{"stale:   " + stableRef + " locked at " + old + ", now " + moved, "missing: " + newRef, "extra:   " + edgeRef} {
		if !strings.Contains(text, want) {
			t.Errorf("report text lacks %q:\n%s", want, text)
		}
	}
}
