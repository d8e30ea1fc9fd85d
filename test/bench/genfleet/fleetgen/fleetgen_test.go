package fleetgen_test

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

// TestGeneratedFleetIsValidAndDeterministic checks that the generator
// writes a repository hostspec accepts, that every host resolves, and that
// the same seed gives the same bytes.
func TestGeneratedFleetIsValidAndDeterministic(t *testing.T) {
	cfg := fleetgen.Config{Hosts: 300, Groups: 50, Seed: 7}
	a, err := fleetgen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := fleetgen.Generate(cfg)
	if !maps.EqualFunc(a, b, func(x, y fleetgen.File) bool { return bytes.Equal(x.Data, y.Data) && x.Mode == y.Mode }) {
		t.Fatal("same seed, different repositories")
	}
	cfg.Seed = 8
	c, _ := fleetgen.Generate(cfg)
	if maps.EqualFunc(a, c, func(x, y fleetgen.File) bool { return bytes.Equal(x.Data, y.Data) }) {
		t.Fatal("different seeds, same repository")
	}
	repo, err := hostspec.Load(context.Background(), a.MapFS())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(repo.HostNames()); n != 300 {
		t.Fatalf("%d hosts, want 300", n)
	}
	if n := len(repo.Groups()); n != 50 {
		t.Fatalf("%d groups, want 50", n)
	}
	if err := repo.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Hosts land in several group combinations (that is what makes the
	// benchmark realistic).
	combos := map[string]bool{}
	for _, h := range repo.HostNames() {
		s, _ := repo.Resolve(context.Background(), h, nil)
		combos[fmtGroups(s.Groups)] = true
	}
	if len(combos) < 20 {
		t.Errorf("only %d distinct group combinations", len(combos))
	}
}

func fmtGroups(g []string) string {
	var b bytes.Buffer
	for _, x := range g {
		b.WriteString(x)
		b.WriteByte(',')
	}
	return b.String()
}
