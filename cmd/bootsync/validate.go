package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/hostspec"
)

func newValidateCmd() *cobra.Command {
	var (
		rf           repoFlags
		rev          string
		allowReserve []string
	)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the whole fleet repository, rendering every declared host",
		Long: `validate decodes every file of the fleet repository strictly and renders every
declared host, templates included. It prints every problem (file:line:column, field,
message) and exits 1 if there is any: use it as a pre-commit hook and in CI.

/etc entries that target paths hosts reserve (the agent's configuration, image
trust files: see docs/agent.md) are problems too, unless --allow-reserved names
them, as the hosts' etc.allowReserved would. Warnings (set-user-ID modes) are
printed but do not fail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			reserved, err := etcoverlay.NewReserved(nil, allowReserve)
			if err != nil {
				return fmt.Errorf("--allow-reserved: %w", err)
			}
			r, err := rf.openRevision(ctx, rev)
			if err != nil {
				return reportLoadError(cmd.ErrOrStderr(), err)
			}
			problems := reserved.Problems(r.Repo.EtcTargets())
			if err := r.Repo.Validate(ctx); err != nil {
				var list hostspec.ErrorList
				if !errors.As(err, &list) {
					return err
				}
				problems = append(problems, list...)
			}
			for _, w := range r.Repo.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
			if len(problems) > 0 {
				problems.Sort()
				return reportLoadError(cmd.ErrOrStderr(), problems)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fleet repository is valid at %s: %d hosts, %d groups\n",
				r.Name, len(r.Repo.HostNames()), len(r.Repo.Groups()))
			return nil
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&rev, "rev", "", "Git revision to check (default: the files on disk)")
	cmd.Flags().StringSliceVar(&allowReserve, "allow-reserved", nil, "a reserved /etc path the hosts allow (their etc.allowReserved); repeatable")
	return cmd
}
