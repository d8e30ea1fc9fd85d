package fleetdiff

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// WriteJSON writes the report as indented JSON (schema in docs/diff-json.md).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write diff as JSON: %w", err)
	}
	return nil
}

// WriteText writes the report for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	s := r.Summary
	ew.printf("bootsync diff %s..%s: %d hosts, %d changed, %d unchanged (%d added, %d removed)\n",
		shortRev(r.Base), shortRev(r.Head), s.Total, s.Changed, s.Unchanged, s.Added, s.Removed)
	if line := r.repoChanges(); line != "" {
		ew.printf("changed in the repo: %s\n", line)
	}
	for _, h := range r.Hosts {
		ew.printf("\n%s %s (%s)\n", statusMark(h.Status), h.Host, h.Status)
		if now := r.statusLine(h.Host); now != "" {
			ew.printf("  now: %s\n", now)
		}
		if g := groupLine(h); g != "" {
			ew.printf("  groups: %s\n", g)
		}
		if h.Image != nil {
			ew.printf("  image: %s\n", imageLine(h.Image))
		}
		for _, f := range h.Files {
			ew.printf("  %s %s%s\n", statusMark(f.Status), f.Path, metaNote(f))
			if f.Diff != "" {
				for _, line := range strings.SplitAfter(strings.TrimSuffix(f.Diff, "\n"), "\n") {
					ew.printf("    %s", line)
				}
				ew.printf("\n")
			}
		}
		for _, c := range h.Settings {
			ew.printf("  %s: %s -> %s\n", c.Field, orUnset(c.Base), orUnset(c.Head))
		}
	}
	return ew.err
}

// markdownBudget keeps a PR comment under GitHub's 65,536-character limit
// with room for the summary; hosts beyond it are listed without diffs.
const markdownBudget = 60000

// WriteMarkdown writes the report as a pull-request comment: a summary table
// first, then one collapsible section per changed host.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	s := r.Summary
	fmt.Fprintf(&b, "### bootsync diff %s → %s\n\n", codeSpan(shortRev(r.Base)), codeSpan(shortRev(r.Head)))
	if !r.Changed() {
		fmt.Fprintf(&b, "No host changes (%d hosts checked).\n", s.Total)
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("| hosts | changed | unchanged | added | removed |\n|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d |\n\n", s.Total, s.Changed, s.Unchanged, s.Added, s.Removed)
	if line := r.repoChanges(); line != "" {
		fmt.Fprintf(&b, "Changed in the repo: %s\n\n", line)
	}
	b.WriteString(r.statusMarkdown())
	b.WriteString("| host | status | image | /etc files | other |\n|---|---|---|---|---|\n")
	for _, h := range r.Hosts {
		img := "—"
		if h.Image != nil {
			img = mdEscape(imageLine(h.Image))
		}
		other := "—"
		if len(h.Settings) > 0 {
			fields := make([]string, len(h.Settings))
			for i, c := range h.Settings {
				fields[i] = cellCode(c.Field)
			}
			other = strings.Join(fields, ", ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cellCode(h.Host), h.Status, img, fileCounts(h.Files), other)
	}
	b.WriteString("\n")
	omitted := 0
	for _, h := range r.Hosts {
		section := hostSection(h)
		if b.Len()+len(section) > markdownBudget {
			omitted++
			continue
		}
		b.WriteString(section)
	}
	if omitted > 0 {
		fmt.Fprintf(&b, "\n_%d more changed hosts are listed in the table but not expanded (comment size limit); run `bootsync diff` locally for everything._\n", omitted)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func hostSection(h HostChange) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<details><summary><b>%s</b> (%s)</summary>\n\n", html.EscapeString(h.Host), h.Status)
	if g := groupLine(h); g != "" {
		fmt.Fprintf(&b, "Groups: %s\n\n", mdEscape(g))
	}
	if h.Image != nil {
		fmt.Fprintf(&b, "Image: %s\n\n", mdEscape(imageLine(h.Image)))
	}
	for _, f := range h.Files {
		fmt.Fprintf(&b, "%s %s%s\n", statusMark(f.Status), codeSpan(f.Path), mdEscape(metaNote(f)))
		if f.Diff != "" {
			fence := "```"
			for strings.Contains(f.Diff, fence) {
				fence += "`"
			}
			fmt.Fprintf(&b, "\n%sdiff\n%s%s\n", fence, f.Diff, fence)
		}
		b.WriteString("\n")
	}
	if len(h.Settings) > 0 {
		b.WriteString("| setting | before | after |\n|---|---|---|\n")
		for _, c := range h.Settings {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", cellCode(c.Field), mdCode(c.Base), mdCode(c.Head))
		}
		b.WriteString("\n")
	}
	b.WriteString("</details>\n\n")
	return b.String()
}

func (r *Report) repoChanges() string {
	var parts []string
	if r.Summary.FleetChanged {
		parts = append(parts, hostspec.FleetFile)
	}
	if r.Summary.LockChanged {
		parts = append(parts, hostspec.LockFile)
	}
	for _, g := range r.Summary.Groups {
		parts = append(parts, fmt.Sprintf("group %s (%s)", g.Name, g.Status))
	}
	return strings.Join(parts, ", ")
}

// shortRev abbreviates a commit id the way git log --oneline does.
func shortRev(rev string) string {
	if len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == "" {
		return rev[:12]
	}
	return rev
}

func groupLine(h HostChange) string {
	b, hd := strings.Join(h.BaseGroups, ", "), strings.Join(h.HeadGroups, ", ")
	switch h.Status {
	case StatusAdded:
		return hd
	case StatusRemoved:
		return b
	}
	if b == hd {
		return ""
	}
	return fmt.Sprintf("[%s] -> [%s]", b, hd)
}

func imageLine(ic *ImageChange) string {
	show := func(im *hostspec.Image) string {
		if im == nil {
			return "(none)"
		}
		if im.Digest == "" || strings.Contains(im.Ref, "@") {
			return im.Ref
		}
		return im.Ref + " (" + shortDigest(im.Digest) + ")"
	}
	return show(ic.Base) + " -> " + show(ic.Head)
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func metaNote(f FileChange) string {
	switch {
	case f.Status == StatusAdded:
		return " (" + f.HeadMeta + ")"
	case f.Status == StatusModified && f.BaseMeta != f.HeadMeta:
		return " (" + f.BaseMeta + " -> " + f.HeadMeta + ")"
	}
	return ""
}

func fileCounts(fs []FileChange) string {
	if len(fs) == 0 {
		return "—"
	}
	n := map[string]int{}
	for _, f := range fs {
		n[f.Status]++
	}
	var parts []string
	for _, st := range []string{StatusAdded, StatusModified, StatusRemoved} {
		if n[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[st], st))
		}
	}
	return strings.Join(parts, ", ")
}

func statusMark(st string) string {
	switch st {
	case StatusAdded:
		return "+"
	case StatusRemoved:
		return "-"
	default:
		return "~"
	}
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

func mdCode(s string) string {
	if s == "" {
		return "_unset_"
	}
	return cellCode(s)
}

// mdEscape keeps table cells intact.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// codeSpan shows s verbatim as inline code, whatever it holds: the fence
// is one backtick longer than the longest run of backticks in s (so a path
// like /etc/motd`<!-- cannot close the span and start HTML), padded with a
// space where s starts or ends with a backtick, and line breaks become
// "␤" so the span stays on its line.
func codeSpan(s string) string {
	s = strings.NewReplacer("\r\n", "␤", "\n", "␤", "\r", "␤").Replace(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// cellCode is codeSpan for a table cell: a "|" would end the cell even
// inside code, so it is escaped (GitHub shows the escaped pipe as "|").
func cellCode(s string) string { return mdEscape(codeSpan(s)) }

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}
