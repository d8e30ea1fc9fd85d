package main

import (
	"context"
	"fmt"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/hostspec/fleetdiff"
)

// revisionSide opens the fleet repository's files at rev (see
// openRevision) without loading them: loading is left to the caller, who
// may decode only some host files.
func (f *repoFlags) revisionSide(ctx context.Context, rev string) (fleetdiff.Side, error) {
	fsys, name, err := f.revisionFS(ctx, rev)
	if err != nil {
		return fleetdiff.Side{}, err
	}
	ceilings, err := f.budget.ceilings()
	if err != nil {
		return fleetdiff.Side{}, err
	}
	opts := []hostspec.LoadOption{hostspec.WithLimitCeilings(ceilings)}
	if name != workingTree {
		opts = append(opts, hostspec.WithRevision(name))
	}
	load := func(ctx context.Context, extra ...hostspec.LoadOption) (*hostspec.Repo, error) {
		repo, err := hostspec.Load(ctx, fsys, append(opts[:len(opts):len(opts)], extra...)...)
		if err != nil {
			return nil, fmt.Errorf("load fleet repository %s at %s: %w", gitsource.Redact(f.repo), name, err)
		}
		return repo, nil
	}
	return fleetdiff.Side{Name: name, FS: fsys, Load: load}, nil
}
