package fleetdiff

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// bigFleet has hosts h-00…, each rendering /etc/big.conf from a template
// of about size bytes that names the host on every line; variant changes
// every line.
func bigFleet(hosts, size int, variant string) fstest.MapFS {
	var tmpl strings.Builder
	for i := 0; tmpl.Len() < size; i++ {
		fmt.Fprintf(&tmpl, "%06d {{ .Host.Name }} %s\n", i, variant)
	}
	m := fstest.MapFS{
		"fleet.yaml":     {Data: []byte(header + "kind: Fleet\nspec:\n  image: registry.example.com/os/base:stable\n  etc:\n    - {path: /etc/big.conf, from: files/big.tmpl, template: true}\n")},
		"files/big.tmpl": {Data: []byte(tmpl.String())},
	}
	for i := range hosts {
		n := fmt.Sprintf("h-%02d", i)
		m["hosts/"+n+".yaml"] = &fstest.MapFile{Data: []byte(hostFile(n, "", ""))}
	}
	return m
}

// A file larger than the inline limit is summarised by sizes and digests,
// in the report and in UnifiedDiff (which `bootsync plan` uses).
func TestLargeFilesAreSummarised(t *testing.T) {
	base, head := load(t, "b", bigFleet(1, 500<<10, "old")), load(t, "h", bigFleet(1, 500<<10, "new"))
	rep, err := Compare(context.Background(), base, head, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fc := rep.Hosts[0].Files[0]
	if fc.Omitted != OmittedSize || fc.BaseSize < 256<<10 || fc.HeadSize < 256<<10 ||
		!strings.HasPrefix(fc.Diff, "Diff not shown, larger than the 256 KiB shown inline: ") || !strings.Contains(fc.Diff, "sha256 "+fc.BaseSHA256[:12]) {
		t.Fatalf("file change = %+v", fc)
	}
	d := UnifiedDiff("/etc/x", []byte(strings.Repeat("a\n", 200<<10)), []byte("b\n"), true, true)
	if !strings.HasPrefix(d, "Diff not shown") || !strings.Contains(d, "400 KiB (409600 bytes") || !strings.Contains(d, "2 bytes (2 bytes") {
		t.Fatalf("UnifiedDiff of a large file = %q", d)
	}
	// Under the limit, nothing changes.
	rep, err = Compare(context.Background(), base, head, Options{InlineLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if fc := rep.Hosts[0].Files[0]; fc.Omitted != "" || !strings.HasPrefix(fc.Diff, "--- a/etc/big.conf") {
		t.Fatalf("a file under the limit was not diffed: %+v", fc.Omitted)
	}
}

// Once the report holds ReportLimit of diff text, later diffs (in host
// order) are summarised, the same way on every run.
func TestReportLimitIsDeterministic(t *testing.T) {
	base, head := load(t, "b", bigFleet(12, 8<<10, "old")), load(t, "h", bigFleet(12, 8<<10, "new"))
	var first []string
	for run := range 5 {
		rep, err := Compare(context.Background(), base, head, Options{ReportLimit: 60 << 10, Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var shown int
		for _, hc := range rep.Hosts {
			got = append(got, hc.Host+":"+hc.Files[0].Omitted)
			if hc.Files[0].Omitted == "" {
				shown += len(hc.Files[0].Diff)
			}
		}
		if run == 0 {
			first = got
			if shown > 60<<10 || !strings.HasSuffix(got[len(got)-1], OmittedReportLimit) || strings.HasSuffix(got[0], OmittedReportLimit) {
				t.Fatalf("diffs shown %d bytes; hosts %q", shown, got)
			}
		} else if !reflect.DeepEqual(got, first) {
			t.Fatalf("run %d summarised other hosts: %q, first run %q", run, got, first)
		}
	}
}
