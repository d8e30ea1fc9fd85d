package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeBootID gives the test root a boot ID, as the kernel does.
func writeBootID(t *testing.T, root, id string) {
	t.Helper()
	p := filepath.Join(root, "proc/sys/kernel/random/boot_id")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckBoot(t *testing.T) {
	const before, now = "boot-before", "boot-now"
	tests := []struct {
		name    string
		journal Journal
		ok      bool
		reason  string
	}{
		{"nothing pending", Journal{}, true, "no update awaits"},
		{"update staged, not rebooted yet", Journal{Pending: &PendingReboot{Kind: pendingUpdate, BootID: now}}, true, "not rebooted yet"},
		{"verification of this boot failed, rollback under way",
			Journal{FailedBoot: now, Pending: &PendingReboot{Kind: pendingAutoRollback, BootID: now},
				Quarantine: map[string]QuarantineEntry{digB: {Digest: digB, Reason: "health check api failed"}}},
			false, "health check api failed"},
		{"verification failed, no rollback possible", Journal{FailedBoot: now}, false, "verification of this boot failed"},
		{"back on the old image after the automatic rollback", Journal{FailedBoot: before, Pending: &PendingReboot{Kind: pendingAutoRollback, BootID: before}}, true, "rolled back"},
		{"this boot awaits a verdict that never comes", Journal{Pending: &PendingReboot{Kind: pendingUpdate, BootID: before}}, false, "did not verify this boot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, root := t.TempDir(), t.TempDir()
			writeBootID(t, root, now)
			j := tt.journal
			if err := NewJournalStore(state).Save(&j); err != nil {
				t.Fatal(err)
			}
			v, err := CheckBoot(context.Background(), state, root, 50*time.Millisecond, 10*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if v.OK != tt.ok || !strings.Contains(v.Reason, tt.reason) {
				t.Fatalf("CheckBoot = %+v, want ok=%v with %q", v, tt.ok, tt.reason)
			}
		})
	}
}

// A verdict that comes while check-boot waits is the one it reports.
func TestCheckBootWaitsForTheVerdict(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	writeBootID(t, root, "boot-now")
	store := NewJournalStore(state)
	if err := store.Save(&Journal{Pending: &PendingReboot{Kind: pendingUpdate, BootID: "boot-before"}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = store.Save(&Journal{Committed: digB}) // the agent verified the boot
	}()
	// Only an upper bound: CheckBoot returns as soon as the verdict is in.
	v, err := CheckBoot(context.Background(), state, root, 2*time.Minute, 10*time.Millisecond)
	if err != nil || !v.OK {
		t.Fatalf("CheckBoot = %+v, %v; want ok once the agent committed the update", v, err)
	}
}
