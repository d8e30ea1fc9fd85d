package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/registry"
)

func newLockCmd() *cobra.Command {
	var (
		rf       repoFlags
		check    bool
		insecure []string
	)
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Pin every image tag of the fleet repository to its digest in bootsync.lock",
		Long: `lock resolves every image tag referenced by the fleet repository (one HEAD request
per tag) and writes bootsync.lock: tag -> digest, sorted, so the same pins give the
same file. Hosts and diff use a pinned digest without asking the registry; commit
the lock to roll a new image out through review. Digest references need no pin.

With --check nothing is written: the command lists stale, missing and extra pins
and exits 1 when the lock is not up to date (for CI). Exit status 2 on trouble.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			if !check && isGitURL(rf.repo) {
				// The lock is written next to fleet.yaml: a clone in the
				// cache is no place for it, and a URL is no file path.
				return &exitError{code: 2, err: fmt.Errorf("lock writes bootsync.lock into a directory: give the fleet's directory as --repo (a Git URL works with --check only)")}
			}
			r, err := rf.openRevision(ctx, "")
			if err != nil {
				err = reportLoadError(cmd.ErrOrStderr(), err)
				if ee, ok := err.(*exitError); ok {
					ee.code = 2
					return ee
				}
				return &exitError{code: 2, err: err}
			}
			// Through the registries.conf mirrors this machine's podman,
			// skopeo and bootc use (CONTAINERS_REGISTRIES_CONF points
			// elsewhere).
			client, err := registry.New(registry.WithInsecureRegistries(insecure...), registry.WithRegistriesConf("/"), registry.WithNetworkTimeout(rf.budget.netTimeout))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var locked map[string]string
			if l := r.Repo.Lock(); l != nil {
				locked = l.Images
			}
			rep, err := registry.CheckLock(ctx, client, r.Repo.Images(), locked)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if check {
				fmt.Fprint(out, rep.String())
				if !rep.UpToDate() {
					return &exitError{code: 1}
				}
				return nil
			}
			if rep.UpToDate() && r.Repo.Lock() != nil {
				fmt.Fprint(out, rep.String())
				return nil
			}
			return writeLock(out, filepath.Join(rf.repo, hostspec.LockFile), rep)
		},
	}
	rf.register(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "do not write; exit 1 when bootsync.lock is stale")
	cmd.Flags().StringSliceVar(&insecure, "insecure-registry", nil, "registry host:port reached over plain HTTP (test registries only)")
	return cmd
}

// writeLock writes the current pins of rep to path atomically and says
// what changed.
func writeLock(out io.Writer, path string, rep *registry.LockReport) error {
	lock := &hostspec.Lock{Images: rep.Current}
	if err := renameio.WriteFile(path, lock.Encode(), 0o644); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("write %s: %w", path, err)}
	}
	for _, c := range rep.Stale {
		fmt.Fprintf(out, "updated: %s %s -> %s\n", c.Ref, c.Locked, c.Current)
	}
	for _, c := range rep.Missing {
		fmt.Fprintf(out, "added:   %s %s\n", c.Ref, c.Current)
	}
	for _, ref := range rep.Extra {
		fmt.Fprintf(out, "removed: %s\n", ref)
	}
	fmt.Fprintf(out, "wrote %s: %d image(s) pinned\n", path, len(rep.Current))
	return nil
}
