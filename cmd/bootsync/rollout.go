package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"github.com/bootsync/bootsync/rollout"
)

func newRolloutCmd() *cobra.Command {
	var (
		g          rollout.Git
		sf         statusFlags
		promURL    string
		author     string
		output     string
		netTimeout = netdeadline.Default
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "rollout --repo URL --prometheus URL",
		Short: "Advance or halt the rollout fleet.yaml declares, as one commit (for CI or a timer)",
		Long: `rollout reads fleet.yaml's rollout policy at the tip of the branch, the current wave
(the bucket range of the rollout's group) and every host's last report from Prometheus,
and makes one decision:

  advance  every host of the wave runs the wave's commit healthy and has soaked: the
           group's selector.bucket becomes the next wave, in one commit
  halt     more hosts failed than the failure budget: the group's hosts are paused
           (update.paused: true), or with onFailure: revert the group's file goes back
           to what it was before the rollout, in one commit
  wait     hosts are still updating, or the wave is soaking

Commits are pushed fast-forward only, so two runs racing cannot both advance: the loser
decides again on the new tip. With --push-branch the commit goes to that branch instead,
for a pull request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.URL == "" || promURL == "" {
				return fmt.Errorf("--repo (the fleet repository's Git URL) and --prometheus are required")
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if author != "" {
				a, err := mail.ParseAddress(author)
				if err != nil {
					return fmt.Errorf("--author %q: want \"Name <email>\": %w", author, err)
				}
				g.AuthorName, g.AuthorEmail = a.Name, a.Address
			}
			// go-git's push and clone use the registered transports: give
			// them the same per-phase deadlines as every other call.
			hc := githttp.NewClient(&http.Client{Transport: netdeadline.Transport(netTimeout)})
			client.InstallProtocol("https", hc)
			client.InstallProtocol("http", hc)
			status, err := fleetstatus.New(promURL, sf.lookback, netTimeout)
			if err != nil {
				return err
			}
			d, err := rollout.Run(cmd.Context(), rollout.Options{Git: g, Status: status, DryRun: dryRun})
			if err != nil {
				return err
			}
			return printDecision(cmd.OutOrStdout(), d, output, dryRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&g.URL, "repo", "", "the fleet repository's Git URL (http(s)://…)")
	fl.StringVar(&g.Branch, "branch", "main", "the branch the hosts follow")
	fl.StringVar(&g.Path, "path", "", "the fleet's directory inside the repository")
	fl.BoolVar(&g.AllowHTTP, "allow-http", false, "allow a plain http:// repository URL")
	fl.StringVar(&g.UsernameFile, "git-username-file", "", "file holding the user name")
	fl.StringVar(&g.PasswordFile, "git-password-file", "", "file holding the password or token (it needs push access)")
	fl.StringVar(&g.CAFile, "git-ca-file", "", "extra CA certificates (PEM) for https")
	fl.StringVar(&g.SigningKeyFile, "signing-key", "", "armored OpenPGP private key that signs the commits (hosts with trust.commitKeys need it)")
	fl.StringVar(&author, "author", "", `commit author, "Name <email>" (default "bootsync rollout <bootsync-rollout@localhost>")`)
	fl.StringVar(&g.PushBranch, "push-branch", "", "push the decision to this branch instead of --branch (to open a pull request from it)")
	fl.StringVar(&promURL, "prometheus", "", "Prometheus server that scrapes the agents")
	fl.DurationVar(&netTimeout, "network-timeout", netdeadline.Default, "bound on each phase of a network call")
	fl.BoolVar(&dryRun, "dry-run", false, "decide and print, commit nothing")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	sf.register(cmd)
	return cmd
}

// printDecision writes what a rollout run decided.
func printDecision(out io.Writer, d *rollout.Decision, output string, dryRun bool) error {
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(out, "%s: %s\n", d.Action, d.Summary)
	for _, h := range d.Failed {
		fmt.Fprintf(out, "  failed  %s: %s\n", h.Host, h.Why)
	}
	for _, h := range d.Pending {
		fmt.Fprintf(out, "  pending %s: %s\n", h.Host, h.Why)
	}
	if d.Commit != "" {
		fmt.Fprintf(out, "pushed %s to %s\n", d.Commit, d.Branch)
	} else if dryRun && (d.Action == rollout.ActionAdvance || d.Action == rollout.ActionHalt) {
		fmt.Fprintln(out, "dry run: nothing committed")
	}
	return nil
}
