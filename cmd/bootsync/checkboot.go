package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/reconcile"
)

func newCheckBootCmd() *cobra.Command {
	var (
		hf   hostFlags
		wait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "check-boot",
		Short: "Exit 1 when the agent found this boot bad (for greenboot)",
		Long: `check-boot waits up to --wait for the agent's verdict on the current boot. It
exits 0 when nothing awaits verification (no update, or it was committed), 1 when
the agent's health verification of this boot failed or no verdict came in time, and 2
when it could not tell (the state directory is unreadable). Run it
from a greenboot required.d script: if the agent itself cannot come up after an OS
update, greenboot's boot counting rolls the host back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			v, err := reconcile.CheckBoot(cmd.Context(), cfg.StateDir, cfg.Root, wait, time.Second)
			if err != nil {
				// Exit 2, not 1: "could not decide" is not a bad boot.
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), v.Reason)
			if !v.OK {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	hf.register(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Minute, "how long to wait for the agent's verdict")
	return cmd
}
