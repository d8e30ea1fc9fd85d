package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/hostspec/fleetdiff"
	"github.com/bootsync/bootsync/reconcile"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// planView is `bootsync plan -o json`.
type planView struct {
	Plan    reconcile.Plan           `json:"plan"`
	Desired *reconcile.DesiredStatus `json:"desired,omitempty"`
	Etc     []etcChangeView          `json:"etc"`
}

type etcChangeView struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	Diff   string `json:"diff,omitempty"`
}

func planJSON(res *reconcile.PassResult) planView {
	v := planView{Plan: res.Plan, Desired: res.Desired, Etc: []etcChangeView{}}
	if res.Etc != nil {
		for _, c := range res.Etc.Changes {
			v.Etc = append(v.Etc, etcChangeView{Path: c.Path, Kind: string(c.Kind), Reason: c.Reason, Diff: changeDiff(c.Path, c)})
		}
	}
	return v
}

// printPlan shows what a pass decided; with diffs, also each /etc change.
func printPlan(w io.Writer, res *reconcile.PassResult, diffs bool) {
	if d := res.Desired; d != nil {
		fmt.Fprintf(w, "desired: %s at commit %.12s\n", d.Target, d.Commit)
	}
	fmt.Fprintf(w, "state: %s: %s\n", res.Plan.State, res.Plan.Reason)
	for i, s := range res.Plan.Steps {
		fmt.Fprintf(w, "  %d. %s", i+1, s.Action)
		if s.Ref != "" {
			fmt.Fprintf(w, " %s", s.Ref)
		}
		if s.Soft {
			fmt.Fprint(w, " (soft)")
		}
		if s.Reason != "" {
			fmt.Fprintf(w, ": %s", s.Reason)
		}
		fmt.Fprintln(w)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if res.Etc == nil {
		return
	}
	for _, c := range res.Etc.Changes {
		fmt.Fprintf(w, "  /etc %s %s: %s\n", c.Kind, c.Path, c.Reason)
		if diffs {
			if d := changeDiff(c.Path, c); d != "" {
				for _, line := range strings.SplitAfter(strings.TrimSuffix(d, "\n"), "\n") {
					fmt.Fprintf(w, "      %s", line)
				}
				fmt.Fprintln(w)
			}
		}
	}
	for _, d := range res.Etc.Drift {
		fmt.Fprintf(w, "  drift %s: %s\n", d.Path, d.Kind)
	}
}

func newStatusCmd() *cobra.Command {
	var (
		hf     hostFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the agent last saw and did on this host",
		Long: `status prints the desired image against the booted, staged and rollback
deployments, the last pass and its outcome, the last error with its reason, managed
/etc files, drift, quarantined images and the last health verdict, from
status.json in the state directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			store := reconcile.NewStatusStore(cfg.StateDir)
			st, err := store.Load()
			if err != nil {
				return err
			}
			if st == nil {
				return fmt.Errorf("no status yet: %s does not exist (has the agent run?)", store.Path())
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	hf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func printStatus(out io.Writer, st *reconcile.Status) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "host:\t%s (as of %s)\n", st.Host, st.Updated.Format("2006-01-02 15:04:05 MST"))
	if d := st.Desired; d != nil {
		printDesired(w, d)
	}
	for _, u := range st.OtherUpdaters {
		fmt.Fprintf(w, "other updater:\t%s is enabled\n", u)
	}
	dep := func(name string, d *reconcile.Deployment) {
		if d == nil {
			fmt.Fprintf(w, "%s:\t-\n", name)
			return
		}
		extra := ""
		if d.DownloadOnly {
			extra = "\t(download-only)"
		}
		fmt.Fprintf(w, "%s:\t%s%s\n", name, d.Digest, extra)
	}
	dep("booted", st.Booted)
	dep("staged", st.Staged)
	dep("rollback", st.Rollback)
	if st.RollbackQueued {
		fmt.Fprintf(w, "\trollback is queued for the next boot\n")
	}
	fmt.Fprintf(w, "reboot pending:\t%v\n", st.RebootPending)
	if st.FleetLockHeld {
		fmt.Fprintf(w, "fleetlock:\tholding a reboot slot\n")
	}
	if p := st.LastPass; p != nil {
		state := string(p.State) + ": "
		if p.State == "" {
			state = "" // the pass could not start
		}
		fmt.Fprintf(w, "last pass:\t%s %s in %s: %s%s\n", p.Started.Format("2006-01-02 15:04:05"), p.Result, p.Duration, state, p.Reason)
	}
	if !st.LastSuccess.IsZero() {
		fmt.Fprintf(w, "last success:\t%s\n", st.LastSuccess.Format("2006-01-02 15:04:05"))
	}
	if e := st.LastError; e != nil {
		fmt.Fprintf(w, "last error:\t%s [%s] %s\n", e.Time.Format("2006-01-02 15:04:05"), e.Reason, e.Message)
	}
	if h := st.Health; h != nil {
		printHealth(w, h)
	}
	for _, q := range st.Quarantine {
		fmt.Fprintf(w, "quarantined:\t%s: %s\n", q.Digest, q.Reason)
	}
	fmt.Fprintf(w, "managed files:\t%d\n", len(st.Managed))
	for _, m := range st.Managed {
		fmt.Fprintf(w, "\t%s\t%.12s\n", m.Path, m.SHA256)
	}
	fmt.Fprintf(w, "drift:\t%d\n", len(st.Drift))
	for _, d := range st.Drift {
		fmt.Fprintf(w, "\t%s\t%s\n", d.Path, d.Detail)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "warning:\t%s\n", warn)
	}
	return w.Flush()
}

func printDesired(w io.Writer, d *reconcile.DesiredStatus) {
	fmt.Fprintf(w, "desired:\t%s\t(%s at %.12s)\n", d.Digest, d.Ref, d.Commit)
	if d.ResolvedFrom != "" {
		fmt.Fprintf(w, "resolved from:\t%s\n", d.ResolvedFrom)
	}
	if d.SignatureFrom != "" {
		fmt.Fprintf(w, "signature from:\t%s\n", d.SignatureFrom)
	}
	if d.HostPolicy != "" {
		fmt.Fprintf(w, "host policy:\t%s\n", strings.TrimPrefix(d.HostPolicy, "host policy: "))
	}
}

func printHealth(w io.Writer, h *reconcile.HealthStatus) {
	verdict := "passed"
	if !h.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "health:\t%s for %.19s at %s\n", verdict, h.Digest, h.Time.Format("2006-01-02 15:04:05"))
	for _, c := range h.Checks {
		mark := "ok"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "\t%s %s (required %v, %d attempts) %s\n", mark, c.Name, c.Required, c.Attempts, firstLine(c.Output))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func newRebootCmd() *cobra.Command {
	var hf hostFlags
	cmd := &cobra.Command{
		Use:   "reboot",
		Short: "Apply a staged update now (update.reboot: manual)",
		Long: `reboot records the operator's go-ahead for a staged update (update.reboot:
manual) and runs a pass, which reboots into it; logged-in users do not hold it back.
When nothing is staged or queued, it says so and the go-ahead is dropped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			agent, err := buildAgent(cfg, newLogger(), nil, "")
			if err != nil {
				return err
			}
			res, err := agent.RebootNow(cmd.Context())
			if res != nil && res.Plan.State != "" {
				printPlan(cmd.OutOrStdout(), res, false)
			}
			if err == nil && (res == nil || !res.Rebooting) {
				fmt.Fprintln(cmd.OutOrStdout(), "no reboot: nothing is staged or queued for this host")
			}
			return err
		},
	}
	hf.register(cmd)
	return cmd
}

func newUnquarantineCmd() *cobra.Command {
	var (
		hf  hostFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "unquarantine [DIGEST...]",
		Short: "Let the agent try quarantined images again",
		Long: `unquarantine removes images from this host's quarantine, so the next pass may
switch to them again. Give digests (or unique prefixes), or --all.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("give digests or --all")
			}
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			removed, err := reconcile.Unquarantine(cmd.Context(), cfg.StateDir, all, args)
			if err != nil {
				return err
			}
			for _, d := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "unquarantined %s\n", d)
			}
			return nil
		},
	}
	hf.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "remove every quarantined image")
	return cmd
}

// changeDiff renders an /etc change as a unified diff when both sides are
// text and small enough to have been read.
func changeDiff(path string, c etcoverlay.Change) string {
	before, after, ok := c.Text()
	if !ok {
		return ""
	}
	return fleetdiff.UnifiedDiff(path, []byte(before), []byte(after), c.Before.Exists, c.After.Exists)
}
