package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/hostspec/fleetdiff"
)

func newDiffCmd() *cobra.Command {
	var (
		rf       repoFlags
		base     string
		head     string
		hostGlob string
		output   string
		exitCode bool
		full     bool
		status   string
		sf       statusFlags
	)
	cmd := &cobra.Command{
		Use:   "diff --base REV [--head REV]",
		Short: "Show what changes on every host between two revisions",
		Long: `diff renders every host at two revisions of the fleet repository and prints, per
changed host, the image change, a unified diff of each /etc file added, changed or
removed, and changed health checks and update settings, then a summary. --head
defaults to the files on disk, so it works in a PR checkout before commit.

Only the hosts the change can affect are rendered (a host file: its host; a group
file: the hosts its old or new selector picks; another file: the hosts that read it);
the report is the same as rendering every host, which --full does. Changes to
fleet.yaml or bootsync.lock render every host.

Exit status: 0 when nothing changes (or without --exit-code), 1 when something
changes and --exit-code is given, 2 on trouble (as diff(1)).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text", "markdown", "json":
			default:
				return &exitError{code: 2, err: fmt.Errorf("--output %q: want text, markdown or json", output)}
			}
			if base == "" {
				return &exitError{code: 2, err: fmt.Errorf("--base is required")}
			}
			ctx := cmd.Context()
			trouble := func(err error) error {
				err = reportLoadError(cmd.ErrOrStderr(), err)
				if ee, ok := err.(*exitError); ok {
					ee.code = 2
					return ee
				}
				return &exitError{code: 2, err: err}
			}
			rep, err := diffReport(ctx, cmd.ErrOrStderr(), &rf, base, head, full, fleetdiff.Options{HostGlob: hostGlob})
			if err != nil {
				return trouble(err)
			}
			if status != "" {
				// The changed hosts are in the report; the head repository
				// itself is not needed (and is not loaded whole).
				live, err := sf.fetch(ctx, status, rf.budget.netTimeout, &fleetRevision{Name: rep.Head})
				if err != nil {
					return trouble(fmt.Errorf("--status-from: %w", err))
				}
				rep.Annotate(live.ForDiff(rep))
			}
			if err := writeReport(cmd.OutOrStdout(), rep, output); err != nil {
				return trouble(err)
			}
			if exitCode && rep.Changed() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&base, "base", "", "Git revision to compare from (required)")
	cmd.Flags().StringVar(&head, "head", "", "Git revision to compare to (default: the files on disk)")
	cmd.Flags().StringVar(&hostGlob, "host", "", "only hosts whose names match this glob")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, markdown or json")
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when any host changes")
	cmd.Flags().BoolVar(&full, "full", false, "render every host at both revisions, not only those the change can affect")
	cmd.Flags().StringVar(&status, "status-from", "", "Prometheus server that scrapes the agents: show what each changed host runs now")
	sf.register(cmd)
	return cmd
}

// writeReport prints rep in the --output format.
func writeReport(out io.Writer, rep *fleetdiff.Report, output string) error {
	switch output {
	case "json":
		return rep.WriteJSON(out)
	case "markdown":
		return rep.WriteMarkdown(out)
	default:
		return rep.WriteText(out)
	}
}

// diffReport compares the revisions base and head: only the hosts the
// change can affect, or every host when full is set or the change needs it.
func diffReport(ctx context.Context, stderr io.Writer, rf *repoFlags, base, head string, full bool, opts fleetdiff.Options) (*fleetdiff.Report, error) {
	// Both revisions open at once (a remote may need a fetch).
	var (
		bs, hs     fleetdiff.Side
		berr, herr error
		wg         sync.WaitGroup
	)
	wg.Go(func() { bs, berr = rf.revisionSide(ctx, base) })
	wg.Go(func() { hs, herr = rf.revisionSide(ctx, head) })
	wg.Wait()
	if berr != nil {
		return nil, nameSide(stderr, "base", base, berr)
	}
	if herr != nil {
		return nil, nameSide(stderr, "head", head, herr)
	}
	if !full {
		rep, err := fleetdiff.CompareChanged(ctx, bs, hs, opts)
		if err == nil || !errors.Is(err, fleetdiff.ErrFullNeeded) {
			return rep, err
		}
	}
	return compareFull(ctx, stderr, bs, hs, base, head, opts)
}

// compareFull loads both revisions whole and renders every host: what
// --full asks for, and what a change that cannot be attributed to some
// hosts needs.
func compareFull(ctx context.Context, stderr io.Writer, bs, hs fleetdiff.Side, base, head string, opts fleetdiff.Options) (*fleetdiff.Report, error) {
	// Both revisions load at once: each is a full decode of the repo.
	var (
		b, h       *hostspec.Repo
		berr, herr error
		wg         sync.WaitGroup
	)
	wg.Go(func() { b, berr = bs.Load(ctx) })
	wg.Go(func() { h, herr = hs.Load(ctx) })
	wg.Wait()
	if berr != nil {
		return nil, nameSide(stderr, "base", base, berr)
	}
	if herr != nil {
		return nil, nameSide(stderr, "head", head, herr)
	}
	return fleetdiff.Compare(ctx,
		fleetdiff.Revision{Name: bs.Name, Repo: b, FS: bs.FS},
		fleetdiff.Revision{Name: hs.Name, Repo: h, FS: hs.FS}, opts)
}

// nameSide says which revision a repository's problems are in before they
// are listed: a base without fleet.yaml is not something the PR can fix in
// its own files.
func nameSide(stderr io.Writer, side, rev string, err error) error {
	var list hostspec.ErrorList
	if !errors.As(err, &list) {
		return err // it names the revision itself
	}
	what := fmt.Sprintf("the %s revision %q (--%s)", side, rev, side)
	if rev == "" {
		what = "the working tree (the default --head)"
	}
	fmt.Fprintf(stderr, "%s is not a valid fleet repository:\n", what)
	return err
}
