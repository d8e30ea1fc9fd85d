package fleetdiff

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestWriteJSONIsMarshalIndent: the report written host by host is byte
// for byte the report encoded whole, as consumers of docs/diff-json.md
// have always read it: with no hosts, with hosts, with HTML-like text in
// names and diffs, and with live status after the hosts.
func TestWriteJSONIsMarshalIndent(t *testing.T) {
	withHosts := compare(t, Options{})
	if len(withHosts.Hosts) < 2 {
		t.Fatalf("the test fleet changes %d hosts; want several", len(withHosts.Hosts))
	}
	odd := *withHosts
	odd.Hosts = append([]HostChange{}, withHosts.Hosts...)
	odd.Hosts[0].Host = `<web> & "01"` + "\n  \"hosts\": []"
	odd.Base = "\n  \"hosts\": []"
	odd.Status = &LiveStatus{Source: "http://127.0.0.1:9090", Time: time.Unix(1700000000, 0).UTC(),
		Hosts: map[string]HostNow{odd.Hosts[0].Host: {Booted: "sha256:ab", State: "idle", Flags: []string{"drift"}}}}
	empty := &Report{Schema: SchemaVersion, Base: "a", Head: "b", Hosts: []HostChange{}, Summary: Summary{Groups: []GroupChange{}}}
	for name, rep := range map[string]*Report{"no hosts": empty, "hosts": withHosts, "odd text and status": &odd} {
		t.Run(name, func(t *testing.T) {
			want, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			var got bytes.Buffer
			if err := rep.WriteJSON(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("WriteJSON differs from MarshalIndent:\n got: %.3000s\nwant: %.3000s", got.Bytes(), want)
			}
		})
	}
}

// smallBatches makes compareAll decode and render a few hosts at a time,
// so that small test fleets take the many-batch path of large ones.
func smallBatches(t *testing.T) {
	t.Helper()
	old := batchSize
	batchSize = 7
	t.Cleanup(func() { batchSize = old })
}
