package reconcile

import (
	"context"
	"fmt"
	"time"
)

// BootVerdict is what the agent decided about the current boot.
type BootVerdict struct {
	OK     bool
	Reason string
}

// CheckBoot reports whether the current boot is good as far as the agent
// knows, waiting up to wait for its verdict. It is the greenboot backstop:
// when the agent does not come up after an OS update, boot counting rolls
// the host back. A boot is good when nothing awaits verification (no
// update, or it was committed), or when this boot is not the one a pending
// update rebooted into. It is bad when the agent's verification of this
// boot failed, or no verdict came within wait.
func CheckBoot(ctx context.Context, stateDir, root string, wait time.Duration, poll time.Duration) (BootVerdict, error) {
	store := NewJournalStore(stateDir)
	deadline := time.Now().Add(wait)
	boot := BootID(root)
	for {
		j, err := store.Load()
		if err != nil {
			return BootVerdict{}, err
		}
		p := j.Pending
		switch {
		case boot != "" && j.FailedBoot == boot:
			reason := "the agent's verification of this boot failed"
			for _, q := range j.Quarantine {
				if q.Reason != "" {
					reason += ": " + q.Reason
				}
			}
			return BootVerdict{OK: false, Reason: reason}, nil
		case p == nil:
			return BootVerdict{OK: true, Reason: "no update awaits verification"}, nil
		case p.Kind == pendingAutoRollback && p.BootID != boot:
			return BootVerdict{OK: true, Reason: "rolled back after a failed update"}, nil
		case p.BootID == boot && !p.Soft:
			return BootVerdict{OK: true, Reason: "the pending update has not rebooted yet"}, nil
		}
		// This boot awaits the agent's verdict.
		if !time.Now().Before(deadline) {
			return BootVerdict{OK: false, Reason: fmt.Sprintf("the agent did not verify this boot within %s", wait)}, nil
		}
		select {
		case <-ctx.Done():
			return BootVerdict{}, ctx.Err()
		case <-time.After(min(poll, time.Until(deadline))):
		}
	}
}
