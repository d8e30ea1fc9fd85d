package hostspec

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestBucketAnchors pins Bucket to the documented algorithm. The values were
// computed outside Go, e.g. for web-01:
//
//	printf 'bootsync-bucket/v1\0web-01' | sha256sum   # 3c439a22b1d30dfe…
//	python3 -c 'print(0x3c439a22b1d30dfe % 100)'      # 90
//
// A change here moves hosts between rollout rings: it must never happen.
func TestBucketAnchors(t *testing.T) {
	for name, want := range map[string]int{"web-01": 90, "web-02": 37, "edge-001": 0, "db-seoul-17": 65, "a": 90, "": 58} {
		if got := Bucket(name); got != want {
			t.Errorf("Bucket(%q) = %d, want %d", name, got, want)
		}
	}
}

// TestBucketShare checks that bucket ranges select their share of hosts
// within ±3 percentage points over 10,000 realistic host names.
func TestBucketShare(t *testing.T) {
	const n = 10000
	names := make([]string, 0, n)
	for i := range n {
		names = append(names, fmt.Sprintf("%s-%s-%04d", []string{"web", "db", "edge", "api"}[i%4], []string{"seoul", "berlin", "virginia"}[i%3], i))
	}
	for _, c := range []struct {
		rng    string
		lo, hi int
	}{{"0-9", 0, 9}, {"0-49", 0, 49}, {"10-19", 10, 19}, {"90-99", 90, 99}, {"0-0", 0, 0}, {"50", 50, 50}, {"0-99", 0, 99}} {
		lo, hi, msg := parseBucketRange(c.rng)
		if msg != "" || lo != c.lo || hi != c.hi {
			t.Fatalf("parseBucketRange(%q) = %d, %d, %q", c.rng, lo, hi, msg)
		}
		sel := Selector{Bucket: c.rng, bucketLo: lo, bucketHi: hi, hasBucket: true}
		matched := 0
		for _, name := range names {
			if sel.Matches(name, nil) {
				matched++
			}
		}
		share := float64(matched) / n
		want := float64(hi-lo+1) / 100
		if math.Abs(share-want) > 0.03 {
			t.Errorf("bucket %q selects %.1f%% of hosts, want %.0f%% ± 3", c.rng, 100*share, 100*want)
		}
	}
}

// TestGroupOrder checks that groups apply in ascending priority, ties by
// name, and that the last one applied wins.
func TestGroupOrder(t *testing.T) {
	g := func(name string, prio int) string {
		return groupYAML(name, fmt.Sprintf("selector: {hosts: ['*']}\npriority: %d\nspec:\n  vars: {order: %s, %s: true}\n", prio, name, name))
	}
	fsys := files("fleet.yaml", minimalFleet+"  vars: {order: fleet}\n",
		"groups/b.yaml", g("b", 0),
		"groups/a.yaml", g("a", 0),
		"groups/d.yaml", g("d", 10),
		"groups/c.yaml", g("c", -5),
		"groups/z.yaml", groupYAML("z", "selector: {hosts: ['other-*']}\npriority: 100\nspec:\n  vars: {order: z}\n"),
	)
	r := mustLoad(t, fsys)
	var names []string
	for _, gr := range r.Groups() {
		names = append(names, gr.Name)
	}
	if want := []string{"c", "a", "b", "d", "z"}; !slices.Equal(names, want) {
		t.Errorf("Groups() = %v, want %v", names, want)
	}
	s := mustResolve(t, r, "h1", nil)
	if want := []string{"c", "a", "b", "d"}; !slices.Equal(s.Groups, want) {
		t.Errorf("HostSpec.Groups = %v, want %v", s.Groups, want)
	}
	if got := r.GroupsFor("h1", nil); !slices.Equal(got, s.Groups) {
		t.Errorf("GroupsFor = %v, want %v", got, s.Groups)
	}
	if s.Vars["order"] != "d" || s.Provenance["vars.order"].File != "groups/d.yaml" {
		t.Errorf("vars.order = %v from %v, want d from groups/d.yaml", s.Vars["order"], s.Provenance["vars.order"])
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		if s.Vars[k] != true {
			t.Errorf("vars.%s = %v, want true (every matching group contributes)", k, s.Vars[k])
		}
	}
	if got := mustResolve(t, r, "other-1", nil); got.Vars["order"] != "z" {
		t.Errorf("other-1 vars.order = %v, want z (priority 100)", got.Vars["order"])
	}
}

// TestSelectors checks each part of a selector and that all given parts
// must match.
func TestSelectors(t *testing.T) {
	fsys := files("fleet.yaml", minimalFleet,
		"groups/canary.yaml", groupYAML("canary", "selector: {hosts: [\"edge-0*\"], labels: {ring: \"0\"}}\n"),
		"groups/web.yaml", groupYAML("web", "selector: {hosts: [\"web-*\", \"www?\"]}\n"),
		"groups/seoul.yaml", groupYAML("seoul", "selector: {labels: {site: seoul, tier: prod}}\n"),
		"groups/ten.yaml", groupYAML("ten", "selector: {hosts: [\"edge-00*\"], bucket: \"0-9\"}\n"),
		"groups/web-ten.yaml", groupYAML("web-ten", "selector: {hosts: [\"web-*\"], bucket: \"90\"}\n"),
		"hosts/web-01.yaml", header+"kind: Host\nmetadata: {name: web-01, labels: {site: seoul, tier: prod}}\n",
	)
	r := mustLoad(t, fsys)
	for _, c := range []struct {
		host   string
		labels map[string]string
		want   []string
	}{
		{"edge-01", map[string]string{"ring": "0"}, []string{"canary"}},
		{"edge-01", map[string]string{"ring": "1"}, nil},
		{"edge-11", map[string]string{"ring": "0"}, nil},
		{"www1", nil, []string{"web"}},
		{"wwww12", nil, nil},
		{"web-01", nil, []string{"seoul", "web", "web-ten"}}, // labels from the file; bucket 90
		{"web-02", map[string]string{"site": "seoul"}, []string{"web"}},
		{"edge-001", nil, []string{"ten"}}, // bucket 0
	} {
		s := mustResolve(t, r, c.host, c.labels)
		got := s.Groups
		if len(got) == 0 {
			got = nil
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %v: groups %v, want %v", c.host, c.labels, got, c.want)
		}
	}
}

// TestHostsWithoutFiles checks that a host with no file in hosts/ resolves
// from the fleet and the groups it matches, and is not a declared host.
func TestHostsWithoutFiles(t *testing.T) {
	r := mustLoad(t, exampleRepo())
	if names := r.HostNames(); !slices.Equal(names, []string{"web-01"}) {
		t.Fatalf("HostNames = %v", names)
	}
	if hs := r.Hosts(); len(hs) != 1 || hs[0].Name != "web-01" || hs[0].Labels["role"] != "web" || hs[0].Source.File != "hosts/web-01.yaml" {
		t.Fatalf("Hosts = %+v", hs)
	}
	if _, ok := r.Host("edge-01"); ok {
		t.Fatal("edge-01 reported as declared")
	}
	s := mustResolve(t, r, "edge-01", map[string]string{"ring": "0", "site": "seoul"})
	if !slices.Equal(s.Groups, []string{"seoul", "canary"}) {
		t.Errorf("groups = %v, want [seoul canary]", s.Groups)
	}
	if s.Image.Ref != "registry.example.com/os/base:next" {
		t.Errorf("image = %s, want the canary image", s.Image.Ref)
	}
	if s.Labels["ring"] != "0" || s.Labels["site"] != "seoul" {
		t.Errorf("labels = %v", s.Labels)
	}
	motd := etcFile(t, s, "/etc/motd")
	if string(motd.Content) != "Welcome to edge-01\n" {
		t.Errorf("motd = %q", motd.Content)
	}
	if _, found := findEtc(s, "/etc/NetworkManager/system-connections/eth0.nmconnection"); found {
		t.Error("edge-01 got web-01's own file")
	}
	if _, err := r.Resolve(context.Background(), "bad/name", nil); err == nil {
		t.Error("Resolve accepted a host name with a slash")
	}
}
