package main

import (
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "bootsync",
		Short: "GitOps for bootc hosts: a Git repository describes every host of a fleet",
		Long: `bootsync makes a Git repository the one place where a fleet of bootc hosts is
described. On each host, "bootsync agent" converges the machine to its spec in the
repository; in CI, "bootsync diff" shows what a pull request changes on every host.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newValidateCmd(),
		newHostsCmd(),
		newRenderCmd(),
		newDiffCmd(),
		newLockCmd(),
		newPublishCmd(),
		newImageCmd(),
		newAgentCmd(),
		newReconcileCmd(),
		newPlanCmd(),
		newStatusCmd(),
		newRebootCmd(),
		newUnquarantineCmd(),
		newCheckBootCmd(),
		newFleetCmd(),
		newRolloutCmd(),
	)
	return root
}
