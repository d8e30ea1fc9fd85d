package fleetdiff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

func side(name string, fsys fs.FS) Side {
	return Side{Name: name, FS: fsys, Load: func(ctx context.Context, opts ...hostspec.LoadOption) (*hostspec.Repo, error) {
		return hostspec.Load(ctx, fsys, append([]hostspec.LoadOption{hostspec.WithRevision(name)}, opts...)...)
	}}
}

func cloneFS(m fstest.MapFS) fstest.MapFS {
	out := make(fstest.MapFS, len(m))
	for k, v := range m {
		out[k] = &fstest.MapFile{Data: slices.Clone(v.Data), Mode: v.Mode}
	}
	return out
}

// fullAndIncremental returns the JSON of both comparisons; incremental is
// nil when CompareChanged asked for the full comparison.
func fullAndIncremental(t *testing.T, base, head fstest.MapFS) (full, inc []byte, fullErr error) {
	t.Helper()
	ctx := context.Background()
	var fb bytes.Buffer
	rb, berr := hostspec.Load(ctx, base, hostspec.WithRevision("base"))
	rh, herr := hostspec.Load(ctx, head, hostspec.WithRevision("head"))
	if fullErr = errors.Join(berr, herr); fullErr == nil {
		rep, err := Compare(ctx, Revision{"base", rb, base}, Revision{"head", rh, head}, Options{})
		if err != nil {
			fullErr = err
		} else if err := rep.WriteJSON(&fb); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := CompareChanged(ctx, side("base", base), side("head", head), Options{})
	if errors.Is(err, ErrFullNeeded) {
		return fb.Bytes(), nil, fullErr
	}
	if err != nil {
		t.Fatalf("incremental: %v", err)
	}
	var ib bytes.Buffer
	if err := rep.WriteJSON(&ib); err != nil {
		t.Fatal(err)
	}
	return fb.Bytes(), ib.Bytes(), fullErr
}

// pick returns a random file name of m under dir with the suffix.
func pick(rng *rand.Rand, m fstest.MapFS, dir, suffix string) string {
	var names []string
	for k := range m {
		if strings.HasPrefix(k, dir) && strings.HasSuffix(k, suffix) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return names[rng.IntN(len(names))]
}

var (
	roleRe   = regexp.MustCompile(`role: [a-z]+`)
	bucketRe = regexp.MustCompile(`bucket: "[0-9]+-[0-9]+"`)
	prioRe   = regexp.MustCompile(`priority: [0-9]+`)
	siteRe   = regexp.MustCompile(`site: [a-z]+`)
)

// edit changes one file of m the way a pull request would and says what
// it did.
func edit(rng *rand.Rand, m fstest.MapFS) string {
	// change rewrites the named file; pick names none when there is none.
	change := func(name string, rewrite func([]byte) []byte) string {
		if name == "" {
			return "nothing"
		}
		m[name].Data = rewrite(m[name].Data)
		return "edit " + name
	}
	replace := func(name string, re *regexp.Regexp, with string) string {
		return change(name, func(b []byte) []byte { return re.ReplaceAll(b, []byte(with)) })
	}
	remove := func(name string) string {
		delete(m, name)
		return "delete " + name
	}
	switch rng.IntN(14) {
	case 0:
		return replace(pick(rng, m, "hosts/", ".yaml"), roleRe, "role: "+[]string{"web", "db", "api"}[rng.IntN(3)])
	case 1:
		return replace(pick(rng, m, "hosts/", ".yaml"), regexp.MustCompile(`ip: 10\.`), "ip: 11.")
	case 2:
		return remove(pick(rng, m, "hosts/", ".yaml"))
	case 3:
		name := pick(rng, m, "hosts/", ".yaml")
		if name == "" {
			return "nothing"
		}
		old := hostspec.HostFileName(name)
		fresh := fmt.Sprintf("new-%d", rng.IntN(1000))
		m["hosts/"+fresh+".yaml"] = &fstest.MapFile{Data: bytes.ReplaceAll(m[name].Data, []byte(old), []byte(fresh))}
		return "add hosts/" + fresh
	case 4:
		return replace(pick(rng, m, "groups/", ".yaml"), regexp.MustCompile(`(?m)^  image: (.*)$`), "  image: $1-next")
	case 5:
		return replace(pick(rng, m, "groups/", ".yaml"), bucketRe, fmt.Sprintf(`bucket: "%d-%d"`, rng.IntN(50), 50+rng.IntN(50)))
	case 6:
		return replace(pick(rng, m, "groups/", ".yaml"), prioRe, fmt.Sprintf("priority: %d", rng.IntN(40)))
	case 7:
		return replace(pick(rng, m, "groups/", ".yaml"), siteRe, "site: "+[]string{"seoul", "paris", "nowhere"}[rng.IntN(3)])
	case 8:
		return remove(pick(rng, m, "groups/", ".yaml"))
	case 9:
		return change(pick(rng, m, "files/", ""), func(b []byte) []byte { return append(b, "# edited\n"...) })
	case 10:
		m[fmt.Sprintf("files/common/added-%d.conf", rng.IntN(100))] = &fstest.MapFile{Data: []byte("added\n"), Mode: 0o644}
		return "add a file under files/common"
	case 12:
		return change("fleet.yaml", func(b []byte) []byte { return bytes.Replace(b, []byte("Welcome to "), []byte("Hello from "), 1) })
	case 13:
		return change("fleet.yaml", func(b []byte) []byte {
			return bytes.Replace(b, []byte("domain: example.com"), []byte("domain: example.org"), 1)
		})
	default:
		m["README.md"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("readme %d\n", rng.IntN(100)))}
		return "edit README.md"
	}
}

// TestIncrementalMatchesFull is the property that makes the incremental
// diff safe: over random single- and multi-file edits of generated fleets,
// fleet.yaml's included, its report is byte for byte the full diff's,
// with hosts decoded and rendered a few at a time.
func TestIncrementalMatchesFull(t *testing.T) {
	smallBatches(t)
	runs, incremental := 0, 0
	for seed := range uint64(60) {
		gen, err := fleetgen.Generate(fleetgen.Config{Hosts: 150, Groups: 20, Seed: seed % 3})
		if err != nil {
			t.Fatal(err)
		}
		base := gen.MapFS()
		head := cloneFS(base)
		rng := rand.New(rand.NewPCG(seed, 7))
		var did []string
		for range 1 + rng.IntN(3) {
			did = append(did, edit(rng, head))
		}
		full, inc, fullErr := fullAndIncremental(t, base, head)
		runs++
		if inc == nil {
			continue // the full comparison was asked for: the caller runs it
		}
		incremental++
		if fullErr != nil {
			t.Fatalf("seed %d (%v): the full diff fails (%v) but the incremental one does not", seed, did, fullErr)
		}
		if !bytes.Equal(full, inc) {
			t.Fatalf("seed %d (%v): incremental report differs from the full one:\nfull: %.2000s\nincremental: %.2000s", seed, did, full, inc)
		}
	}
	if incremental < runs/2 {
		t.Fatalf("only %d of %d edits were compared incrementally", incremental, runs)
	}
}

// TestIncrementalMatchesFullOnExample edits the example fleet of the
// documentation: every file, one at a time, removed or changed.
func TestIncrementalMatchesFullOnExample(t *testing.T) {
	base := fstest.MapFS{}
	root := os.DirFS("../../examples/fleet")
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, p)
		info, _ := d.Info()
		base[p] = &fstest.MapFile{Data: data, Mode: info.Mode().Perm()}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(base))
	for k := range base {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, how := range []string{"remove", "append"} {
			head := cloneFS(base)
			if how == "remove" {
				delete(head, name)
			} else if strings.HasSuffix(name, ".yaml") {
				head[name].Data = append(head[name].Data, []byte("# edited\n")...)
			} else {
				head[name].Data = append(head[name].Data, []byte("edited\n")...)
			}
			full, inc, fullErr := fullAndIncremental(t, base, head)
			if inc == nil {
				continue
			}
			if fullErr != nil {
				t.Fatalf("%s %s: the full diff fails (%v) but the incremental one does not", how, name, fullErr)
			}
			if !bytes.Equal(full, inc) {
				t.Fatalf("%s %s: incremental report differs:\nfull: %.2000s\nincremental: %.2000s", how, name, full, inc)
			}
		}
	}
}
