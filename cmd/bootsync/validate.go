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
printed but do not fail.

Secrets (etc entries with sops: or age:) are checked without decrypting:
every secret a host uses must be encrypted to a recipient the host holds
(secrets.recipients of its file, its groups or the fleet), or validate
fails at the etc entry's file:line. What cannot be checked is a warning: a
host that declares no recipient, and plain age files encrypted to X25519
recipients (age does not say whom those are for; use SOPS files or SSH
recipients to have them checked).`,
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
			hostWarnings, err := r.Repo.ValidateReport(ctx)
			if err != nil {
				var list hostspec.ErrorList
				if !errors.As(err, &list) {
					return err
				}
				problems = append(problems, list...)
			}
			for _, w := range append(r.Repo.Warnings(), hostWarnings...) {
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
