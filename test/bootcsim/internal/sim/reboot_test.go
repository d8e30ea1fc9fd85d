package sim

import (
	"reflect"
	"testing"
)

func file(s string) EtcFile { return EtcFile{Mode: 0o644, Data: []byte(s)} }

// ostree's 3-way merge, file by file: the image decides only for files the
// host left as the old image shipped them.
func TestMergeEtc(t *testing.T) {
	oldDefaults := map[string]EtcFile{
		"unmodified":        file("old"),
		"modified":          file("old"),
		"deleted-locally":   file("old"),
		"dropped-by-image":  file("old"),
		"dropped-but-local": file("old"),
		"mode-changed":      file("old"),
		"owner-changed":     file("old"),
	}
	newDefaults := map[string]EtcFile{
		"unmodified":      file("new"),
		"modified":        file("new"),
		"deleted-locally": file("new"),
		"new-in-image":    file("new"),
		"added-locally":   file("new"),
		"mode-changed":    file("new"),
		"owner-changed":   file("new"),
	}
	live := map[string]EtcFile{
		"unmodified":        file("old"),
		"modified":          file("mine"),
		"dropped-by-image":  file("old"),
		"dropped-but-local": file("mine"),
		"added-locally":     file("mine"),
		"local-only":        file("mine"),
		"mode-changed":      {Mode: 0o600, Data: []byte("old")},
		"owner-changed":     {Mode: 0o644, UID: 1000, GID: 1000, Data: []byte("old")},
	}
	want := map[string]EtcFile{
		"unmodified":        file("new"),
		"modified":          file("mine"),
		"new-in-image":      file("new"),
		"dropped-but-local": file("mine"),
		"added-locally":     file("mine"),
		"local-only":        file("mine"),
		// Metadata counts as a modification: mode, and (as on real
		// ostree) owner and group.
		"mode-changed":  {Mode: 0o600, Data: []byte("old")},
		"owner-changed": {Mode: 0o644, UID: 1000, GID: 1000, Data: []byte("old")},
	}
	if got := mergeEtc(oldDefaults, newDefaults, live); !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeEtc:\n got  %v\n want %v", got, want)
	}
	if len(live) != 8 || string(live["unmodified"].Data) != "old" {
		t.Fatal("mergeEtc modified its input")
	}
}
