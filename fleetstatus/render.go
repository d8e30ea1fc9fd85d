package fleetstatus

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats fleet status writes.
var Formats = []string{"table", "json", "markdown", "html"}

// Write writes the report in format (one of Formats).
func (f *Fleet) Write(w io.Writer, format string) error {
	var err error
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(f)
	case "markdown":
		err = f.writeMarkdown(w)
	case "html":
		err = f.WriteHTML(w)
	case "table":
		err = f.writeTable(w)
	default:
		return fmt.Errorf("output %q: want %s", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return fmt.Errorf("write fleet status as %s: %w", format, err)
	}
	return nil
}

// stateText is a host's state in a few words.
func (h *Host) stateText() string {
	switch h.Kind() {
	case KindNeverSeen:
		return "never reported"
	case KindNotReporting:
		return "NOT REPORTING"
	}
	s := orDash(h.State)
	if h.RebootPending {
		s += ", reboot pending"
	}
	return s
}

func (h *Host) resultText() string {
	if !h.Seen {
		return "-"
	}
	s := orDash(h.Result)
	if h.Reason != "" {
		s += " (" + h.Reason + ")"
	}
	return s
}

func (h *Host) healthText() string {
	switch {
	case h.Health == nil:
		return "-"
	case h.Health.Passed:
		return "passed " + ShortDigest(h.Health.Digest)
	}
	return "FAILED " + ShortDigest(h.Health.Digest)
}

func (h *Host) quarantineText() string {
	if len(h.Quarantined) == 0 {
		return "-"
	}
	var parts []string
	for _, q := range h.Quarantined {
		parts = append(parts, ShortDigest(q.Digest))
	}
	return strings.Join(parts, ",")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func (f *Fleet) counts() string {
	n := map[string]int{}
	for _, h := range f.Hosts {
		n[h.Kind()]++
	}
	var parts []string
	for _, k := range Kinds {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

func (f *Fleet) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tBOOTED\tFROM\tDESIRED\tAT\tSTATE\tLAST PASS\tRESULT\tHEALTH\tQUARANTINED")
	for _, h := range f.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, ShortDigest(h.Booted.Digest), ShortCommit(h.Booted.Commit),
			ShortDigest(h.Desired.Digest), ShortCommit(h.Desired.Commit), h.stateText(), ago(f.Time, h.LastPass), h.resultText(), h.healthText(), h.quarantineText())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d host(s): %s\n", len(f.Hosts), f.counts())
	for _, dc := range f.Digests {
		fmt.Fprintf(w, "  %s\n", dc.summaryLine())
	}
	for _, h := range f.Hosts {
		if rs := h.Reasons(); len(rs) > 0 {
			fmt.Fprintf(w, "%s: %s\n", h.Host, strings.Join(rs, "; "))
		}
	}
	_, err := fmt.Fprintf(w, "from %s at %s\n", f.Source, f.Time.Format(time.RFC3339))
	return err
}

// mdCell keeps a table cell intact.
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "`", "'").Replace(s)
}

func (f *Fleet) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### bootsync fleet status\n\n%d host(s): %s\n\n", len(f.Hosts), f.counts())
	b.WriteString("| digest | hosts | references | from commits |\n|---|---:|---|---|\n")
	for _, dc := range f.Digests {
		cs := make([]string, len(dc.Commits))
		for i, c := range dc.Commits {
			cs[i] = ShortCommit(c)
		}
		fmt.Fprintf(&b, "| `%s` | %d | %s | %s |\n", ShortDigest(dc.Digest), dc.Hosts, mdCell(strings.Join(dc.Refs, ", ")), strings.Join(cs, ", "))
	}
	b.WriteString("\n| host | booted | from | desired | at | state | last pass | result | health | quarantined |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "| %s | `%s` | `%s` | `%s` | `%s` | %s | %s | %s | %s | %s |\n", mdCell(h.Host), ShortDigest(h.Booted.Digest), ShortCommit(h.Booted.Commit),
			ShortDigest(h.Desired.Digest), ShortCommit(h.Desired.Commit), mdCell(h.stateText()), ago(f.Time, h.LastPass), mdCell(h.resultText()), h.healthText(), h.quarantineText())
	}
	var failing []string
	for _, h := range f.Hosts {
		if rs := h.Reasons(); len(rs) > 0 {
			failing = append(failing, fmt.Sprintf("- **%s**: %s", mdCell(h.Host), mdCell(strings.Join(rs, "; "))))
		}
	}
	if len(failing) > 0 {
		b.WriteString("\nFailing:\n\n" + strings.Join(failing, "\n") + "\n")
	}
	fmt.Fprintf(&b, "\n_From %s at %s._\n", mdCell(f.Source), f.Time.Format(time.RFC3339))
	_, err := io.WriteString(w, b.String())
	return err
}
