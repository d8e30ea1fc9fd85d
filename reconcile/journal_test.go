package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A journal written by a newer agent (a higher version) is neither read
// nor rewritten: Load says who wrote it, and the file stays byte for byte.
func TestNewerJournalIsKeptAsItIs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.json")
	newer := []byte(`{"version": 2, "lastApplied": "abc", "somethingNew": {"x": 1}}` + "\n")
	if err := os.WriteFile(path, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewJournalStore(dir).Load()
	var nj *NewerJournalError
	if !errors.As(err, &nj) || nj.Version != 2 || !strings.Contains(err.Error(), "written by a newer agent (journal version 2; this agent understands 1)") {
		t.Fatalf("Load = %v, want a NewerJournalError for version 2", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, newer) {
		t.Fatalf("the newer journal changed:\n%s", got)
	}
}

// Truncated, versionless and impossible journals are clear errors.
func TestUnreadableJournalSaysWhy(t *testing.T) {
	for content, want := range map[string]string{
		`{"version": 1, "lastApp`: "not valid JSON (truncated or corrupt?)",
		`{"lastApplied": "abc"}`:  "it has no version",
		`{"version": 0}`:          "version 0 is not a journal version any agent wrote",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "journal.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewJournalStore(dir).Load(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want %q", content, err, want)
		}
	}
}

// Fields a newer agent added without a version bump survive this agent's
// rewrite, at the top level and inside objects both know (a quarantine
// entry, the pending reboot); what this agent removes stays removed.
func TestJournalKeepsFieldsItDoesNotKnow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.json")
	written := `{"version": 1, "lastApplied": "c1", "futureTop": [1, 2.50, "x"],
		"quarantine": {"sha256:aa": {"digest": "sha256:aa", "reason": "did not boot", "at": "2025-01-01T00:00:00Z", "futureEntry": true}},
		"pending": {"kind": "update", "digests": ["sha256:bb"], "imageRef": "r@sha256:bb", "commit": "c2", "bootID": "b", "at": "2025-01-01T00:00:00Z",
		            "update": {"reboot": "immediate", "paused": false, "grace": "5m0s", "softReboot": false, "deferRebootWhileUsers": false, "maxDeferral": "24h0m0s", "futureUpdate": "u"},
		            "futurePending": 7}}`
	if err := os.WriteFile(path, []byte(written), 0o600); err != nil {
		t.Fatal(err)
	}
	store := NewJournalStore(dir)
	j, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	j.LastApplied = "c3"
	if err := store.Save(j); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	pending := got["pending"].(map[string]any)
	switch {
	case got["lastApplied"] != "c3":
		t.Errorf("lastApplied = %v, want this agent's change", got["lastApplied"])
	case !strings.Contains(string(data), `2.50`) || got["futureTop"] == nil:
		t.Errorf("futureTop lost or changed: %s", data)
	case got["quarantine"].(map[string]any)["sha256:aa"].(map[string]any)["futureEntry"] != true:
		t.Errorf("futureEntry lost: %s", data)
	case pending["futurePending"] == nil || pending["update"].(map[string]any)["futureUpdate"] != "u":
		t.Errorf("fields inside pending lost: %s", data)
	}
	// Dropping the pending reboot drops its unknown fields with it.
	j, err = store.Load()
	if err != nil {
		t.Fatal(err)
	}
	j.Pending = nil
	if err := store.Save(j); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if strings.Contains(string(data), "futurePending") || !strings.Contains(string(data), "futureTop") {
		t.Errorf("after removing pending: %s", data)
	}
}
