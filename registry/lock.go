package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
)

// lockWorkers bounds the concurrent resolutions of LockImages: enough to
// hide latency for a fleet with many image tags without hammering a registry.
const lockWorkers = 8

// LockImages resolves every tag reference in refs and returns tag reference
// → digest, the content of bootsync.lock. Digest references need no lock
// entry and are left out; duplicates are resolved once. Every failure is
// reported (joined, sorted by reference), not only the first.
func LockImages(ctx context.Context, c *Client, refs []string) (map[string]string, error) {
	var tags []string
	seen := map[string]bool{}
	var errs []error
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		r, err := ParseReference(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, pinned := r.(name.Digest); pinned {
			continue
		}
		tags = append(tags, ref)
	}
	sort.Strings(tags)

	out := make(map[string]string, len(tags))
	resolveErrs := make([]error, len(tags))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(lockWorkers, len(tags)) {
		wg.Go(func() {
			for i := range next {
				res, err := c.Resolve(ctx, tags[i])
				if err != nil {
					resolveErrs[i] = err
					continue
				}
				mu.Lock()
				out[tags[i]] = res.Digest
				mu.Unlock()
			}
		})
	}
	for i := range tags {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range resolveErrs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("lock images: %w", errors.Join(errs...))
	}
	return out, nil
}

// LockChange is one lock entry whose digest differs from the registry's.
type LockChange struct {
	Ref     string `json:"ref"`
	Locked  string `json:"locked,omitempty"`  // digest in bootsync.lock; empty when missing
	Current string `json:"current,omitempty"` // digest the tag resolves to now
}

// LockReport compares bootsync.lock with what the registry says now.
type LockReport struct {
	// Stale entries: the tag moved since the lock was written.
	Stale []LockChange `json:"stale,omitempty"`
	// Missing entries: tags the fleet repo uses that the lock lacks.
	Missing []LockChange `json:"missing,omitempty"`
	// Extra entries: lock entries no image in the fleet repo uses.
	Extra []string `json:"extra,omitempty"`
	// Current is the lock as it should be.
	Current map[string]string `json:"current"`
}

// UpToDate reports whether the lock matches exactly.
func (r *LockReport) UpToDate() bool {
	return len(r.Stale) == 0 && len(r.Missing) == 0 && len(r.Extra) == 0
}

// String lists the differences, one per line, for `bootsync lock --check`.
func (r *LockReport) String() string {
	if r.UpToDate() {
		return "bootsync.lock is up to date\n"
	}
	var b strings.Builder
	for _, c := range r.Stale {
		fmt.Fprintf(&b, "stale:   %s locked at %s, now %s\n", c.Ref, c.Locked, c.Current)
	}
	for _, c := range r.Missing {
		fmt.Fprintf(&b, "missing: %s (now %s)\n", c.Ref, c.Current)
	}
	for _, ref := range r.Extra {
		fmt.Fprintf(&b, "extra:   %s is locked but no longer used\n", ref)
	}
	b.WriteString("run `bootsync lock` to update bootsync.lock\n")
	return b.String()
}

// CheckLock resolves refs like LockImages and compares the result with
// locked (the current bootsync.lock).
func CheckLock(ctx context.Context, c *Client, refs []string, locked map[string]string) (*LockReport, error) {
	current, err := LockImages(ctx, c, refs)
	if err != nil {
		return nil, err
	}
	rep := &LockReport{Current: current}
	for _, ref := range sortedKeys(current) {
		old, ok := locked[ref]
		switch {
		case !ok:
			rep.Missing = append(rep.Missing, LockChange{Ref: ref, Current: current[ref]})
		case old != current[ref]:
			rep.Stale = append(rep.Stale, LockChange{Ref: ref, Locked: old, Current: current[ref]})
		}
	}
	for _, ref := range sortedKeys(locked) {
		if _, ok := current[ref]; !ok {
			rep.Extra = append(rep.Extra, ref)
		}
	}
	return rep, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
