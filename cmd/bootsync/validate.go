package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var (
		rf  repoFlags
		rev string
	)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the whole fleet repository, rendering every declared host",
		Long: `validate decodes every file of the fleet repository strictly and renders every
declared host, templates included. It prints every problem (file:line:column, field,
message) and exits 1 if there is any: use it as a pre-commit hook and in CI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := rf.openRevision(ctx, rev)
			if err != nil {
				return reportLoadError(cmd.ErrOrStderr(), err)
			}
			if err := r.Repo.Validate(ctx); err != nil {
				return reportLoadError(cmd.ErrOrStderr(), err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fleet repository is valid at %s: %d hosts, %d groups\n",
				r.Name, len(r.Repo.HostNames()), len(r.Repo.Groups()))
			return nil
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&rev, "rev", "", "Git revision to check (default: the files on disk)")
	return cmd
}
