package hostspec

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// Validate resolves and renders every declared host and returns every
// problem found as an ErrorList (nil when there is none). Hosts are
// resolved in parallel.
func (r *Repo) Validate(ctx context.Context) error {
	_, err := r.ValidateReport(ctx)
	return err
}

// ValidateReport is Validate that also returns the hosts' warnings: what
// cannot be checked (see HostSpec.Warnings), each reported once.
func (r *Repo) ValidateReport(ctx context.Context) (ErrorList, error) {
	workers := max(1, min(runtime.GOMAXPROCS(0), len(r.names)))
	results := make([]error, len(r.names))
	specs := make([]*HostSpec, len(r.names))
	var wg sync.WaitGroup
	var next sync.Mutex
	i := 0
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= len(r.names) || ctx.Err() != nil {
					return
				}
				specs[n], results[n] = r.resolveSpec(ctx, r.names[n], nil)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("validate fleet repository: %w", err)
	}
	var all, warns ErrorList
	for n, err := range results {
		if specs[n] != nil {
			warns = append(warns, specs[n].Warnings...)
		}
		if err == nil {
			continue
		}
		list, ok := err.(ErrorList)
		if !ok {
			return nil, fmt.Errorf("validate host %s: %w", r.names[n], err)
		}
		all = append(all, list...)
	}
	warns.Sort()
	return slices.CompactFunc(warns, func(a, b *Error) bool { return *a == *b }), all.err()
}
