package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/hostspec"
)

// hostSummary is one row of `bootsync hosts -o json`.
type hostSummary struct {
	Host   string            `json:"host"`
	Bucket int               `json:"bucket"`
	Labels map[string]string `json:"labels"`
	Groups []string          `json:"groups"`
	Image  hostspec.Image    `json:"image"`
}

func newHostsCmd() *cobra.Command {
	var (
		rf     repoFlags
		rev    string
		output string
	)
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List every declared host with its bucket, groups and image",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			ctx := cmd.Context()
			r, err := rf.openRevision(ctx, rev)
			if err != nil {
				return reportLoadError(cmd.ErrOrStderr(), err)
			}
			rows := []hostSummary{}
			for _, name := range r.Repo.HostNames() {
				spec, err := r.Repo.Resolve(ctx, name, nil)
				if err != nil {
					return reportLoadError(cmd.ErrOrStderr(), err)
				}
				rows = append(rows, hostSummary{Host: name, Bucket: spec.Bucket, Labels: spec.Labels, Groups: spec.Groups, Image: spec.Image})
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tBUCKET\tGROUPS\tIMAGE")
			for _, h := range rows {
				img := h.Image.Ref
				if h.Image.Locked {
					img += " (locked " + shortDigest(h.Image.Digest) + ")"
				}
				groups := strings.Join(h.Groups, ",")
				if groups == "" {
					groups = "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", h.Host, h.Bucket, groups, img)
			}
			return tw.Flush()
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&rev, "rev", "", "Git revision to read (default: the files on disk)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
