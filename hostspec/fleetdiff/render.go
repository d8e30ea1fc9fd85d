package fleetdiff

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// WriteJSON writes the report as indented JSON (schema in docs/diff-json.md).
// The hosts are encoded one at a time: the report of a change to every
// host of a large fleet is hundreds of megabytes, and encoding it whole
// holds it several times over. The bytes are json.MarshalIndent's.
func (r *Report) WriteJSON(w io.Writer) error {
	if err := r.writeJSON(w); err != nil {
		return fmt.Errorf("write diff as JSON: %w", err)
	}
	return nil
}

// hostsPlaceholder is the hosts field of a report without hosts, as
// MarshalIndent writes it; no string can hold it, as a raw newline
// cannot appear inside a JSON string.
const hostsPlaceholder = "\n  \"hosts\": []"

func (r *Report) writeJSON(w io.Writer) error {
	frame := *r
	frame.Hosts = []HostChange{}
	doc, err := json.MarshalIndent(&frame, "", "  ")
	if err != nil {
		return err
	}
	before, after, ok := bytes.Cut(doc, []byte(hostsPlaceholder))
	if !ok {
		return errors.New("no hosts field in the report") // a change to Report's fields
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(before)
	bw.WriteString("\n  \"hosts\": [")
	for i := range r.Hosts {
		if i > 0 {
			bw.WriteByte(',')
		}
		host, err := json.MarshalIndent(&r.Hosts[i], "    ", "  ")
		if err != nil {
			return err
		}
		bw.WriteString("\n    ")
		bw.Write(host)
	}
	if len(r.Hosts) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteByte(']')
	bw.Write(after)
	bw.WriteByte('\n')
	return bw.Flush()
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

// MaxMarkdown is the longest comment GitHub accepts (65,536 characters;
// counted here in bytes, which are never fewer).
const MaxMarkdown = 65536

// Budgets of the PR comment, in bytes: the live-status section, the change
// table, and everything before the closing note. What does not fit is
// counted in the note, which points at -o json for the full detail.
const (
	statusBudget   = 12000
	tableBudget    = 40000
	markdownBudget = 62000
	namesPerRow    = 10 // host names listed per row before "… N more"
	groupsListed   = 20 // changed groups named in "Changed in the repo"
)

// WriteMarkdown writes the report as a pull-request comment that always fits
// GitHub's limit: a summary, one table row per distinct change (hosts with an
// identical change share it: "1,000 hosts: `h000007`, `h000017`, … 990
// more"), then one collapsible section per distinct change while they fit.
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
	if line := r.repoChangesListed(groupsListed); line != "" {
		fmt.Fprintf(&b, "Changed in the repo: %s\n\n", line)
	}
	b.WriteString(truncateLines(r.statusMarkdown(), statusBudget, "- … more in `bootsync diff --status-from … -o json`\n\n"))
	groups := groupChanges(r.Hosts)
	var cut elided
	b.WriteString("| hosts | status | image | /etc files | other |\n|---|---|---|---|---|\n")
	tableEnd := b.Len() + tableBudget
	for i, g := range groups {
		row := g.row()
		if b.Len()+len(row) > tableEnd {
			for _, rest := range groups[i:] {
				cut.rows++
				cut.rowHosts += len(rest.hosts)
			}
			fmt.Fprintf(&b, "| … | %s more distinct changes on %s hosts: see `-o json` | | | |\n", thousands(cut.rows), thousands(cut.rowHosts))
			break
		}
		if len(g.hosts) > namesPerRow {
			cut.names = true
		}
		b.WriteString(row)
	}
	b.WriteString("\n")
	for _, g := range groups {
		for _, v := range g.variants {
			section := variantSection(v)
			if b.Len()+len(section) > markdownBudget {
				cut.sections++
				continue
			}
			b.WriteString(section)
		}
	}
	b.WriteString(cut.note(r))
	_, err := io.WriteString(w, b.String())
	return err
}

// elided counts what the comment leaves out.
type elided struct {
	names          bool // some rows name only their first hosts
	rows, rowHosts int  // distinct changes (and their hosts) past the table's budget
	sections       int  // changes in the table whose diff is not expanded
}

func (e elided) note(r *Report) string {
	if !e.names && e.rows == 0 && e.sections == 0 {
		return ""
	}
	var parts []string
	if e.names {
		parts = append(parts, "Hosts with an identical change share one row.")
	}
	if e.rows > 0 {
		parts = append(parts, fmt.Sprintf("%s more distinct changes on %s hosts are not listed.", thousands(e.rows), thousands(e.rowHosts)))
	}
	if e.sections > 0 {
		parts = append(parts, fmt.Sprintf("%s changes are listed in the table but not expanded (comment size limit).", thousands(e.sections)))
	}
	return fmt.Sprintf("\n_%s Every host's full change is in the JSON report: `bootsync diff -o json` on the same revisions (%s → %s)._\n",
		strings.Join(parts, " "), codeSpan(shortRev(r.Base)), codeSpan(shortRev(r.Head)))
}

func (g *changeGroup) row() string {
	h := g.change
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
	return fmt.Sprintf("| %s | %s | %s | %s | %s |\n", hostsCell(g.hosts), h.Status, img, filesCell(h.Files), other)
}

// hostsCell names a row's hosts: "`web-01`", or "**1,000 hosts**:
// `h000007`, `h000017`, … 990 more".
func hostsCell(hosts []string) string {
	if len(hosts) == 1 {
		return cellCode(hosts[0])
	}
	shown := hosts[:min(len(hosts), namesPerRow)]
	names := make([]string, len(shown))
	for i, n := range shown {
		names[i] = cellCode(n)
	}
	more := ""
	if len(hosts) > len(shown) {
		more = fmt.Sprintf(", … %s more", thousands(len(hosts)-len(shown)))
	}
	return fmt.Sprintf("**%s hosts**: %s%s", thousands(len(hosts)), strings.Join(names, ", "), more)
}

// filesCell lists a change's /etc paths (the first few, then a count).
func filesCell(fs []FileChange) string {
	if len(fs) == 0 {
		return "—"
	}
	const listed = 5
	var parts []string
	for _, f := range fs[:min(len(fs), listed)] {
		parts = append(parts, cellCode(f.Path)+" "+f.Status)
	}
	if len(fs) > listed {
		parts = append(parts, fmt.Sprintf("… %s more (%s)", thousands(len(fs)-listed), fileCounts(fs)))
	}
	return strings.Join(parts, ", ")
}

// variantSection is the expanded detail of one distinct change.
func variantSection(v *variant) string {
	h := v.change
	title := "<b>" + html.EscapeString(h.Host) + "</b>"
	if len(v.hosts) > 1 {
		shown := v.hosts[:min(len(v.hosts), namesPerRow)]
		names := make([]string, len(shown))
		for i, n := range shown {
			names[i] = html.EscapeString(n)
		}
		more := ""
		if len(v.hosts) > len(shown) {
			more = fmt.Sprintf(", … %s more", thousands(len(v.hosts)-len(shown)))
		}
		title = fmt.Sprintf("<b>%s hosts</b>: %s%s", thousands(len(v.hosts)), strings.Join(names, ", "), more)
	}
	body := hostSection(h)
	_, rest, _ := strings.Cut(body, "</summary>")
	return fmt.Sprintf("<details><summary>%s (%s)</summary>%s", title, h.Status, rest)
}

// thousands writes n with thousands separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// truncateLines keeps s within limit bytes, cutting at a line and ending
// with tail.
func truncateLines(s string, limit int, tail string) string {
	if len(s) <= limit {
		return s
	}
	cut := strings.LastIndexByte(s[:limit-len(tail)], '\n')
	return s[:cut+1] + tail
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

func (r *Report) repoChanges() string { return r.repoChangesListed(len(r.Summary.Groups)) }

// repoChangesListed names at most n changed groups.
func (r *Report) repoChangesListed(n int) string {
	var parts []string
	if r.Summary.FleetChanged {
		parts = append(parts, hostspec.FleetFile)
	}
	if r.Summary.LockChanged {
		parts = append(parts, hostspec.LockFile)
	}
	for i, g := range r.Summary.Groups {
		if i == n {
			parts = append(parts, fmt.Sprintf("… %s more groups", thousands(len(r.Summary.Groups)-n)))
			break
		}
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
