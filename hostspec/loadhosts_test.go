package hostspec

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

var listOnly = WithHostFilesOnDemand()

// TestLoadHostsResolvesAsAWholeLoad walks a fleet in batches, the way a
// diff of a change to every host does: each batch resolves its hosts
// exactly as a whole load does, and only its hosts.
func TestLoadHostsResolvesAsAWholeLoad(t *testing.T) {
	ctx := context.Background()
	fsys := generated(t, 60, 8).MapFS()
	whole := mustLoad(t, fsys)
	if got, err := whole.LoadHosts(ctx, whole.HostNames()[:3], nil); err != nil || got != whole {
		t.Fatalf("LoadHosts on a whole load = %p, %v; want the repository itself", got, err)
	}
	listed := mustLoad(t, fsys, listOnly)
	names := listed.HostNames()
	// WithHostFiles alone does not keep what LoadHosts needs (an agent
	// holds its repository for a whole pass).
	own := mustLoad(t, fsys, WithHostFiles(func(n string) bool { return n == names[0] }))
	if got, err := own.LoadHosts(ctx, names[1:3], nil); err != nil || got != own {
		t.Fatalf("LoadHosts without WithHostFilesOnDemand = %p, %v; want the repository itself", got, err)
	}
	if _, err := own.Resolve(ctx, names[1], nil); err == nil {
		t.Fatalf("host %s resolved from a repository that did not decode its file", names[1])
	}
	for start := 0; start < len(names); start += 7 {
		batch := names[start:min(start+7, len(names))]
		part, err := listed.LoadHosts(ctx, append([]string{"not-declared"}, batch...), NewDecodeCache())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range batch {
			want, err := whole.Resolve(ctx, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := part.Resolve(ctx, n, nil)
			if err != nil {
				t.Fatalf("batch %v: resolve %s: %v", batch, n, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("host %s resolved from a batch differs from the whole load:\n%+v\n%+v", n, got, want)
			}
		}
		outside := names[(start+len(batch))%len(names)]
		if _, err := part.Resolve(ctx, outside, nil); err == nil || !strings.Contains(err.Error(), "was not loaded") {
			t.Fatalf("host %s outside the batch resolved: %v", outside, err)
		}
		if h, ok := part.Host(batch[0]); !ok || h.Name != batch[0] || len(part.Hosts()) != len(batch) {
			t.Fatalf("the batch holds %d hosts, want %d", len(part.Hosts()), len(batch))
		}
	}
	if _, err := listed.Resolve(ctx, names[0], nil); err == nil {
		t.Fatal("the listed repository itself resolved a host it did not decode")
	}
}

// TestLoadHostsReportsProblems: a broken host file is reported by the
// batch that reads it, with its file and line; the other batches load.
func TestLoadHostsReportsProblems(t *testing.T) {
	ctx := context.Background()
	fsys := generated(t, 30, 4).MapFS()
	listed := mustLoad(t, fsys, listOnly)
	names := listed.HostNames()
	broken, file := names[5], "hosts/"+names[5]+".yaml"
	if fsys[file] == nil {
		t.Fatalf("no %s in the generated fleet", file)
	}
	fsys[file].Data = append(fsys[file].Data, []byte("bogus: 1\n")...)
	if _, err := listed.LoadHosts(ctx, names[:5], nil); err != nil {
		t.Fatalf("a batch without the broken file: %v", err)
	}
	_, err := listed.LoadHosts(ctx, names[:10], nil)
	findProblem(t, err, file, lineOf(t, string(fsys[file].Data), "bogus"), "bogus", `unknown field "bogus"`)
	if _, err := listed.LoadHosts(ctx, names[6:], nil); err != nil {
		t.Fatalf("a later batch without %s: %v", broken, err)
	}
}

// TestLoadHostsCountsTheWholeRepository: limits.repoSize bounds what every
// batch reads together, as it bounds a whole load.
func TestLoadHostsCountsTheWholeRepository(t *testing.T) {
	ctx := context.Background()
	many := budgetFleet("  repoSize: 8Ki\n", "x")
	var names []string
	for i := range 40 {
		n := fmt.Sprintf("web-%03d", i+10)
		names = append(names, n)
		many["hosts/"+n+".yaml"] = &fstest.MapFile{Data: []byte(header + "kind: Host\nmetadata: {name: " + n + "}\n" + strings.Repeat("# padding\n", 30)), Mode: 0o644}
	}
	listed := mustLoad(t, many, listOnly)
	var err error
	for start := 0; start < len(names) && err == nil; start += 5 {
		_, err = listed.LoadHosts(ctx, names[start:start+5], nil)
	}
	list := problems(t, err)
	if len(list) != 1 || list[0].Limit != "repoSize" || !strings.Contains(list[0].Msg, "limits.repoSize = 8 KiB") {
		t.Fatalf("repoSize problems: %v", list)
	}
}

// TestLoadHostsConcurrently: batches may be asked for from several
// goroutines (run with -race).
func TestLoadHostsConcurrently(t *testing.T) {
	ctx := context.Background()
	listed := mustLoad(t, generated(t, 40, 4).MapFS(), listOnly)
	names := listed.HostNames()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			batch := names[i*10 : i*10+10]
			part, err := listed.LoadHosts(ctx, batch, nil)
			if err == nil {
				_, err = part.Resolve(ctx, batch[3], nil)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
