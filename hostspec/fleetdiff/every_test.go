package fleetdiff

import (
	"bytes"
	"testing"
	"testing/fstest"

	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

// TestFleetChangeMatchesFull: a change to fleet.yaml or bootsync.lock is
// compared by CompareChanged itself (every host, the two revisions sharing
// decoded files), and its report is byte for byte the full diff's.
func TestFleetChangeMatchesFull(t *testing.T) {
	smallBatches(t)
	edits := map[string]func(m fstest.MapFS){
		"motd": func(m fstest.MapFS) {
			m["fleet.yaml"].Data = bytes.Replace(m["fleet.yaml"].Data, []byte("Welcome to "), []byte("Hello from "), 1)
		},
		"vars and a host": func(m fstest.MapFS) {
			m["fleet.yaml"].Data = bytes.Replace(m["fleet.yaml"].Data, []byte("domain: example.com"), []byte("domain: example.org"), 1)
			for name, f := range m {
				if bytes.HasPrefix([]byte(name), []byte("hosts/")) {
					f.Data = bytes.Replace(f.Data, []byte("ip: 10."), []byte("ip: 11."), 1)
					break
				}
			}
		},
		"broken head": func(m fstest.MapFS) {
			m["fleet.yaml"].Data = append(m["fleet.yaml"].Data, []byte("  bogus: 1\n")...)
		},
		"broken host file": func(m fstest.MapFS) {
			m["fleet.yaml"].Data = bytes.Replace(m["fleet.yaml"].Data, []byte("Welcome to "), []byte("Hello from "), 1)
			for name, f := range m {
				if bytes.HasPrefix([]byte(name), []byte("hosts/")) {
					f.Data = append(f.Data, []byte("bogus: 1\n")...)
					break
				}
			}
		},
		"lock added": func(m fstest.MapFS) {
			m["bootsync.lock"] = &fstest.MapFile{Data: []byte("apiVersion: bootsync.dev/v1alpha1\nkind: Lock\nimages: {}\n")}
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			gen, err := fleetgen.Generate(fleetgen.Config{Hosts: 120, Groups: 10, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			base := gen.MapFS()
			head := cloneFS(base)
			edit(head)
			full, inc, fullErr := fullAndIncremental(t, base, head)
			if fullErr != nil {
				if inc != nil {
					t.Fatalf("full: %v; incremental gave a report", fullErr)
				}
				return
			}
			if inc == nil {
				t.Fatal("incremental asked for the full comparison")
			}
			if !bytes.Equal(full, inc) {
				t.Fatalf("reports differ:\nfull: %s\nincremental: %s", full, inc)
			}
		})
	}
}
