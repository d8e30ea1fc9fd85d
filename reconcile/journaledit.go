package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// editJournal changes the agent's journal under the state lock, so that a
// running agent's pass neither sees half of it nor overwrites it.
func editJournal(ctx context.Context, stateDir string, edit func(*Journal) error) error {
	unlock, err := LockStateDir(ctx, stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	store := NewJournalStore(stateDir)
	j, err := store.Load()
	if err != nil {
		return err
	}
	if err := edit(j); err != nil {
		return err
	}
	return store.Save(j)
}

// Unquarantine removes images from the host's quarantine, so the next pass
// may switch to them again: every image with all set, else those whose
// digest starts with one of prefixes. It returns the removed digests,
// sorted, and an error when none matched.
func Unquarantine(ctx context.Context, stateDir string, all bool, prefixes []string) ([]string, error) {
	var removed []string
	err := editJournal(ctx, stateDir, func(j *Journal) error {
		for d := range j.Quarantine {
			if all || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(d, p) }) {
				removed = append(removed, d)
			}
		}
		if len(removed) == 0 {
			return fmt.Errorf("no quarantined image matches %s", strings.Join(prefixes, ", "))
		}
		for _, d := range removed {
			delete(j.Quarantine, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(removed)
	return removed, nil
}

// RebootNow records the operator's go-ahead for a staged update
// (update.reboot: manual; logged-in users do not hold it back) and runs a
// pass, which reboots into it. When the pass did not reboot (nothing is
// staged or queued), the go-ahead is dropped again: it was for now, not
// for whatever is staged next. PassResult.Rebooting says which happened.
func (a *Agent) RebootNow(ctx context.Context) (*PassResult, error) {
	if err := editJournal(ctx, a.cfg.StateDir, func(j *Journal) error {
		j.RebootRequested = true
		return nil
	}); err != nil {
		return nil, err
	}
	res, err := a.Pass(ctx, PassOptions{})
	if res != nil && res.Rebooting {
		return res, err // the host is going down
	}
	if cerr := editJournal(ctx, a.cfg.StateDir, func(j *Journal) error {
		j.RebootRequested = false
		return nil
	}); cerr != nil && err == nil {
		err = cerr
	}
	return res, err
}
