package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/bootsync/bootsync/hostspec"
)

func newRenderCmd() *cobra.Command {
	var (
		rf      repoFlags
		rev     string
		output  string
		explain bool
		labels  map[string]string
	)
	cmd := &cobra.Command{
		Use:   "render HOST",
		Short: "Print the fully resolved spec of one host",
		Long: `render prints what HOST gets: image, /etc files with their content, health checks,
update policy and variables. A host without a file in hosts/ gets the fleet defaults
and the groups whose selectors match its name. --explain says, for every value,
which file and line set it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "yaml" && output != "json" {
				return fmt.Errorf("--output %q: want yaml or json", output)
			}
			ctx := cmd.Context()
			// Only this host's file is decoded: the others cannot change
			// what it gets (`bootsync validate` checks them all).
			own := hostspec.WithHostFiles(func(name string) bool { return name == args[0] })
			r, err := rf.openRevision(ctx, rev, own)
			if err != nil {
				return reportLoadError(cmd.ErrOrStderr(), err)
			}
			spec, err := r.Repo.Resolve(ctx, args[0], labels)
			if err != nil {
				return reportLoadError(cmd.ErrOrStderr(), err)
			}
			if _, declared := r.Repo.Host(args[0]); !declared {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s has no file in hosts/: this is what such a host gets (fleet defaults and the groups that match its name)\n", args[0])
			}
			out := cmd.OutOrStdout()
			switch {
			case explain:
				return hostspec.WriteExplain(out, spec)
			case output == "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(spec)
			default:
				return writeYAML(out, spec)
			}
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&rev, "rev", "", "Git revision to read (default: the files on disk)")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&explain, "explain", false, "show which file and line set each value")
	cmd.Flags().StringToStringVar(&labels, "label", nil, "extra host labels, as the host's local config would add (key=value)")
	return cmd
}

// writeYAML prints v with the same keys as its JSON form: JSON is YAML, and
// decoding it into a node keeps the key order.
func writeYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return fmt.Errorf("encode spec as YAML: %w", err)
	}
	blockStyle(&node)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return fmt.Errorf("encode spec as YAML: %w", err)
	}
	return enc.Close()
}

// blockStyle drops the flow and quoting styles that JSON input carries, so
// the encoder picks block style and literal blocks for multi-line content.
// Strings that a YAML 1.1 reader would take for something else (02:00 is
// 120 to PyYAML, yes is true) stay quoted.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && yaml11Ambiguous.MatchString(n.Value) {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

var yaml11Ambiguous = regexp.MustCompile(`^(?i:[-+0-9.:_]+|y|n|yes|no|on|off|true|false|null|~|)$`)
