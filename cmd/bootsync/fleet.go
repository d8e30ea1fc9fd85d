package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/hostspec"
)

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "See the whole fleet through the agents' metrics in Prometheus",
	}
	cmd.AddCommand(newFleetStatusCmd())
	return cmd
}

// statusFlags are the flags of the commands that read the fleet's status
// from Prometheus.
type statusFlags struct {
	lookback time.Duration
}

func (s *statusFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&s.lookback, "lookback", fleetstatus.DefaultLookback, "how long a host that stopped reporting is still listed with its last report")
}

// fetch reads every host's last report from Prometheus at url and completes
// it with what the fleet repository revision r declares (r may be nil).
func (s *statusFlags) fetch(ctx context.Context, url string, netTimeout time.Duration, r *fleetRevision) (*fleetstatus.Fleet, error) {
	client, err := fleetstatus.New(url, s.lookback, netTimeout)
	if err != nil {
		return nil, err
	}
	f, err := client.Fetch(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	var repo *hostspec.Repo
	head := ""
	if r != nil {
		repo = r.Repo
		if r.Name != workingTree {
			head = r.Name
		}
	}
	f.Complete(repo, head)
	return f, nil
}

func newFleetStatusCmd() *cobra.Command {
	var (
		rf      repoFlags
		sf      statusFlags
		rev     string
		promURL string
		output  string
		filter  fleetstatus.Filter
	)
	cmd := &cobra.Command{
		Use:   "status --prometheus URL",
		Short: "What every host runs now, from the agents' metrics in Prometheus",
		Long: `status reads every agent's last report from Prometheus (the HTTP API): the booted
digest and the commit it came from, the desired digest and commit, the last pass and its
result, the health verdict, quarantined images, a pending reboot, and hosts that stopped
reporting. With --repo (a checkout or a Git URL) hosts the repository declares but that
never reported are listed too, hosts are grouped by wave, and --behind compares with the
repository's commit. -o html writes one self-contained page.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if promURL == "" {
				return fmt.Errorf("--prometheus is required")
			}
			ctx := cmd.Context()
			var r *fleetRevision
			if rf.repo != "" {
				var err error
				if r, err = rf.openRevision(ctx, rev); err != nil {
					return reportLoadError(cmd.ErrOrStderr(), err)
				}
			}
			f, err := sf.fetch(ctx, promURL, rf.budget.netTimeout, r)
			if err != nil {
				return err
			}
			if err := f.Apply(filter); err != nil {
				return err
			}
			return f.Write(cmd.OutOrStdout(), output)
		},
	}
	rf.register(cmd)
	repoFlag := cmd.Flags().Lookup("repo")
	repoFlag.DefValue, rf.repo = "", ""
	repoFlag.Usage = "fleet repository (a directory inside a Git checkout, or a Git URL): lists hosts that never reported and groups hosts by wave"
	sf.register(cmd)
	cmd.Flags().StringVar(&promURL, "prometheus", "", "Prometheus server that scrapes the agents (http(s)://host:port)")
	cmd.Flags().StringVar(&rev, "rev", "", "revision of the fleet repository to compare with (default: the files on disk; a Git URL: its default branch)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json, markdown or html")
	cmd.Flags().StringVar(&filter.HostGlob, "host", "", "only hosts whose names match this glob")
	cmd.Flags().BoolVar(&filter.Behind, "behind", false, "only hosts that do not run what the repository asks for yet")
	cmd.Flags().BoolVar(&filter.Failing, "failing", false, "only failing hosts and hosts that stopped reporting")
	return cmd
}
