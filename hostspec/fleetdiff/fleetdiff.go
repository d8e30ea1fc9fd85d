// Package fleetdiff compares what every host gets at two revisions of a
// fleet repository: the image, each /etc file (as a unified diff), health
// checks, update and image policy. It is what CI posts on a pull request, so
// its JSON form is a stable, documented interface (docs/diff-json.md).
package fleetdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/bootsync/bootsync/hostspec"
)

// Host statuses.
const (
	StatusAdded     = "added"
	StatusRemoved   = "removed"
	StatusModified  = "modified"
	StatusUnchanged = "unchanged"
)

// SchemaVersion is the version of the JSON report; bump on breaking changes.
const SchemaVersion = "bootsync.dev/diff/v1"

// Report is the difference between two revisions for every host declared at
// either of them.
type Report struct {
	Schema  string       `json:"schema"`
	Base    string       `json:"base"`
	Head    string       `json:"head"`
	Summary Summary      `json:"summary"`
	Hosts   []HostChange `json:"hosts"` // changed hosts only, sorted by name
	// Status is what the changed hosts run now (diff --status-from).
	Status *LiveStatus `json:"status,omitempty"`
}

// Summary counts hosts and lists the repository files that changed.
type Summary struct {
	Total     int `json:"total"` // hosts declared at head or base
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	Added     int `json:"added"`
	Removed   int `json:"removed"`
	// Groups lists groups whose definition changed, with a status.
	Groups []GroupChange `json:"groups"`
	// FleetChanged is true when fleet.yaml changed.
	FleetChanged bool `json:"fleetChanged"`
	// LockChanged is true when bootsync.lock changed.
	LockChanged bool `json:"lockChanged"`
}

// GroupChange is a group added, removed or modified between the revisions.
type GroupChange struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// HostChange is what changes on one host.
type HostChange struct {
	Host       string          `json:"host"`
	Status     string          `json:"status"`
	BaseGroups []string        `json:"baseGroups"`
	HeadGroups []string        `json:"headGroups"`
	Image      *ImageChange    `json:"image,omitempty"`
	Files      []FileChange    `json:"files"`
	Settings   []SettingChange `json:"settings"`
}

// ImageChange is a change of the image a host boots.
type ImageChange struct {
	Base *hostspec.Image `json:"base"` // nil for an added host
	Head *hostspec.Image `json:"head"` // nil for a removed host
}

// FileChange is one /etc path whose content, metadata or presence changes.
type FileChange struct {
	Path   string `json:"path"`
	Status string `json:"status"` // added | removed | modified
	// BaseSHA256 and HeadSHA256 are empty where the file is absent.
	BaseSHA256 string `json:"baseSha256,omitempty"`
	HeadSHA256 string `json:"headSha256,omitempty"`
	// BaseMeta and HeadMeta are "mode owner:group", e.g. "0644 root:root".
	BaseMeta string `json:"baseMeta,omitempty"`
	HeadMeta string `json:"headMeta,omitempty"`
	// Diff is a unified diff of the content; empty when only metadata
	// changed, and "Binary files differ" for non-text content.
	Diff string `json:"diff"`
	// Source is where the head (or, for removals, base) version comes from.
	Source hostspec.Source `json:"source"`
	// Omitted says why Diff is only a summary (sizes and digests):
	// OmittedSize or OmittedReportLimit; empty when the diff is shown.
	Omitted string `json:"omitted,omitempty"`
	// BaseSize and HeadSize are the sizes of the two versions, given when
	// the diff is omitted.
	BaseSize int64 `json:"baseSize,omitempty"`
	HeadSize int64 `json:"headSize,omitempty"`

	baseLen, headLen int64 // the sizes, for a summary made after the diff
}

// SettingChange is a changed value outside /etc: a health check, an update
// policy key or an image policy key. Values are rendered as compact JSON.
type SettingChange struct {
	Field string `json:"field"`
	Base  string `json:"base"` // "" when unset
	Head  string `json:"head"` // "" when unset
}

// Changed reports whether anything changes on any host.
func (r *Report) Changed() bool { return r.Summary.Changed > 0 }

// Options narrows a comparison.
type Options struct {
	// HostGlob limits the comparison to hosts whose names match (path.Match).
	HostGlob string
	// Workers bounds parallel rendering; 0 means GOMAXPROCS.
	Workers int
	// InlineLimit is the largest file shown as a line diff (0:
	// DefaultInlineLimit); ReportLimit bounds the diff text of the whole
	// report (0: DefaultReportLimit). Beyond them, changes are summarised
	// by size and digest.
	InlineLimit, ReportLimit int64
}

// Revision is one side of a comparison.
type Revision struct {
	Name string         // shown in reports: a commit id, a ref, or "working tree"
	Repo *hostspec.Repo // loaded fleet repository
	FS   fs.FS          // its files, to tell which groups changed
}

// Compare renders every host declared at either revision and returns what
// changes. A host that fails to render at either side is an error: a broken
// revision is never shown as a partial diff.
func Compare(ctx context.Context, base, head Revision, opts Options) (*Report, error) {
	if opts.HostGlob != "" {
		if _, err := path.Match(opts.HostGlob, ""); err != nil {
			return nil, fmt.Errorf("host glob %q: %w", opts.HostGlob, err)
		}
	}
	names := unionHosts(base.Repo.HostNames(), head.Repo.HostNames(), opts.HostGlob)
	budget := &diffBudget{inline: opts.InlineLimit, report: opts.ReportLimit}
	changes, err := compareAll(ctx, base, head, names, opts.Workers, budget)
	if err != nil {
		return nil, err
	}
	budget.trimReport(changes)
	rep := &Report{Schema: SchemaVersion, Base: base.Name, Head: head.Name, Hosts: []HostChange{}}
	rep.Summary.Total = len(names)
	for _, hc := range changes {
		if hc == nil {
			rep.Summary.Unchanged++
			continue
		}
		rep.Summary.Changed++
		switch hc.Status {
		case StatusAdded:
			rep.Summary.Added++
		case StatusRemoved:
			rep.Summary.Removed++
		}
		rep.Hosts = append(rep.Hosts, *hc)
	}
	if rep.Summary.Groups, err = changedGroups(base.FS, head.FS); err != nil {
		return nil, err
	}
	if rep.Summary.FleetChanged, err = fileChanged(base.FS, head.FS, hostspec.FleetFile); err != nil {
		return nil, err
	}
	if rep.Summary.LockChanged, err = fileChanged(base.FS, head.FS, hostspec.LockFile); err != nil {
		return nil, err
	}
	return rep, nil
}

func unionHosts(a, b []string, glob string) []string {
	seen := make(map[string]bool, len(a)+len(b))
	var out []string
	for _, list := range [][]string{a, b} {
		for _, n := range list {
			if seen[n] {
				continue
			}
			seen[n] = true
			if glob != "" {
				if ok, _ := path.Match(glob, n); !ok {
					continue
				}
			}
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// compareAll renders every host at both revisions and compares it at
// once, so that only the changes are kept: memory stays proportional to
// what changed, not to the fleet.
func compareAll(ctx context.Context, base, head Revision, names []string, workers int, budget *diffBudget) ([]*HostChange, error) {
	declared := func(repo *hostspec.Repo) map[string]bool {
		m := make(map[string]bool)
		for _, n := range repo.HostNames() {
			m[n] = true
		}
		return m
	}
	inBase, inHead := declared(base.Repo), declared(head.Repo)
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]*HostChange, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = compareOne(ctx, base, head, names[i], inBase[names[i]], inHead[names[i]], budget)
			}
		})
	}
	for i := range names {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func compareOne(ctx context.Context, base, head Revision, name string, inBase, inHead bool, budget *diffBudget) (*HostChange, error) {
	var b, h *hostspec.HostSpec
	var err error
	if inBase {
		if b, err = base.Repo.Resolve(ctx, name, nil); err != nil {
			return nil, fmt.Errorf("render host %s at %s: %w", name, base.Name, err)
		}
	}
	if inHead {
		if h, err = head.Repo.Resolve(ctx, name, nil); err != nil {
			return nil, fmt.Errorf("render host %s at %s: %w", name, head.Name, err)
		}
	}
	return compareHost(name, b, h, budget), nil
}

func compareHost(name string, base, head *hostspec.HostSpec, budget *diffBudget) *HostChange {
	hc := &HostChange{Host: name, BaseGroups: []string{}, HeadGroups: []string{}, Files: []FileChange{}, Settings: []SettingChange{}}
	switch {
	case base == nil && head == nil:
		return nil
	case base == nil:
		hc.Status = StatusAdded
	case head == nil:
		hc.Status = StatusRemoved
	default:
		hc.Status = StatusModified
	}
	if base != nil && base.Groups != nil {
		hc.BaseGroups = base.Groups
	}
	if head != nil && head.Groups != nil {
		hc.HeadGroups = head.Groups
	}
	if ic := compareImage(base, head); ic != nil {
		hc.Image = ic
	}
	hc.Files = compareFiles(etcOf(base), etcOf(head), budget)
	if hc.Status == StatusModified && !sameSettings(base, head) {
		// An added or removed host changes in every setting; listing them
		// all would bury the image and files.
		hc.Settings = compareSettings(settingsOf(base), settingsOf(head))
	}
	if hc.Status == StatusModified && hc.Image == nil && len(hc.Files) == 0 && len(hc.Settings) == 0 {
		return nil
	}
	return hc
}

func compareImage(base, head *hostspec.HostSpec) *ImageChange {
	// Copies, not pointers into the specs: a report must not keep every
	// rendered spec alive.
	var b, h *hostspec.Image
	if base != nil {
		img := base.Image
		b = &img
	}
	if head != nil {
		img := head.Image
		h = &img
	}
	if b != nil && h != nil && b.Ref == h.Ref && b.Digest == h.Digest {
		return nil
	}
	return &ImageChange{Base: b, Head: h}
}

func etcOf(s *hostspec.HostSpec) []hostspec.EtcFile {
	if s == nil {
		return nil
	}
	return s.Etc
}

func compareFiles(base, head []hostspec.EtcFile, budget *diffBudget) []FileChange {
	byPath := func(fs []hostspec.EtcFile) map[string]*hostspec.EtcFile {
		m := make(map[string]*hostspec.EtcFile, len(fs))
		for i := range fs {
			m[fs[i].Path] = &fs[i]
		}
		return m
	}
	bm, hm := byPath(base), byPath(head)
	paths := make([]string, 0, len(bm)+len(hm))
	for p := range bm {
		paths = append(paths, p)
	}
	for p := range hm {
		if _, ok := bm[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	out := []FileChange{}
	for _, p := range paths {
		b, h := present(bm[p]), present(hm[p])
		if b == nil && h == nil {
			continue
		}
		fc := FileChange{Path: p}
		switch {
		case b == nil:
			fc.Status, fc.Source = StatusAdded, h.Source
		case h == nil:
			fc.Status, fc.Source = StatusRemoved, b.Source
		default:
			if b.SHA256 == h.SHA256 && meta(b) == meta(h) {
				continue
			}
			fc.Status, fc.Source = StatusModified, h.Source
		}
		var bc, hcont []byte
		if b != nil {
			fc.BaseSHA256, fc.BaseMeta, bc = b.SHA256, meta(b), b.Content
		}
		if h != nil {
			fc.HeadSHA256, fc.HeadMeta, hcont = h.SHA256, meta(h), h.Content
		}
		if fc.BaseSHA256 != fc.HeadSHA256 {
			budget.fileDiff(&fc, bc, hcont, b != nil, h != nil)
		}
		out = append(out, fc)
	}
	return out
}

// present treats an Absent entry as no file: the host will not have it.
func present(f *hostspec.EtcFile) *hostspec.EtcFile {
	if f == nil || f.Absent {
		return nil
	}
	return f
}

func meta(f *hostspec.EtcFile) string {
	return fmt.Sprintf("%s %s:%s", f.Mode, f.Owner, f.Group)
}

func unifiedDiff(p string, base, head []byte, hasBase, hasHead bool) string {
	if !isText(base) || !isText(head) {
		return "Binary files differ\n"
	}
	from, to := "a"+p, "b"+p
	if !hasBase {
		from = "/dev/null"
	}
	if !hasHead {
		to = "/dev/null"
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(base), B: splitLines(head), FromFile: from, ToFile: to, Context: 3,
	})
	if err != nil {
		return fmt.Sprintf("(diff failed: %v)\n", err)
	}
	return d
}

// splitLines keeps line endings and marks a missing final newline the way
// diff(1) does, so such a change is visible.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := difflib.SplitLines(string(b))
	// difflib.SplitLines appends "\n" to the last line; undo that for content
	// that does end in a newline and flag content that does not.
	last := len(lines) - 1
	if strings.HasSuffix(string(b), "\n") {
		lines = lines[:last]
	} else {
		lines[last] = strings.TrimSuffix(lines[last], "\n") + "\n\\ No newline at end of file\n"
	}
	return lines
}

// isText reports whether content can be shown as a line diff.
func isText(b []byte) bool { return utf8.Valid(b) && !bytes.ContainsRune(b, 0) }

// sameSettings is the fast check that spares rendering settings as text
// for the hosts (nearly all, in a typical PR) whose settings did not change.
func sameSettings(a, b *hostspec.HostSpec) bool {
	if !reflect.DeepEqual(a.Update, b.Update) || !reflect.DeepEqual(a.Policy, b.Policy) || len(a.Health) != len(b.Health) {
		return false
	}
	for i := range a.Health {
		x, y := a.Health[i], b.Health[i]
		x.Source, y.Source = hostspec.Source{}, hostspec.Source{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// settingsOf flattens the non-/etc parts of a spec to comparable strings.
func settingsOf(s *hostspec.HostSpec) map[string]string {
	if s == nil {
		return nil
	}
	m := make(map[string]string)
	for _, c := range s.Health {
		m["health["+c.Name+"]"] = checkJSON(c)
	}
	u := s.Update
	m["update.reboot"] = string(u.Reboot)
	if len(u.Windows) > 0 {
		m["update.windows"] = compactJSON(u.Windows)
	}
	if u.FleetLock != nil {
		m["update.fleetlock"] = compactJSON(u.FleetLock)
	}
	m["update.paused"] = fmt.Sprint(u.Paused)
	m["update.grace"] = u.Grace.String()
	m["update.softReboot"] = fmt.Sprint(u.SoftReboot)
	m["update.deferRebootWhileUsers"] = fmt.Sprint(u.DeferRebootWhileUsers)
	m["update.maxDeferral"] = u.MaxDeferral.String()
	if len(s.Policy.Registries) > 0 {
		m["policy.registries"] = compactJSON(s.Policy.Registries)
	}
	m["policy.requireSignatures"] = fmt.Sprint(s.Policy.RequireSignatures)
	return m
}

// checkJSON renders a health check without its provenance: moving a
// check to another file is not a change on the host.
func checkJSON(c hostspec.HealthCheck) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(compactJSON(c)), &m); err != nil {
		return compactJSON(c)
	}
	delete(m, "source")
	return compactJSON(m)
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

func compareSettings(base, head map[string]string) []SettingChange {
	keys := make([]string, 0, len(base)+len(head))
	for k := range base {
		keys = append(keys, k)
	}
	for k := range head {
		if _, ok := base[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := []SettingChange{}
	for _, k := range keys {
		if base[k] != head[k] {
			out = append(out, SettingChange{Field: k, Base: base[k], Head: head[k]})
		}
	}
	return out
}

// changedGroups compares the group files of two revisions by content.
func changedGroups(base, head fs.FS) ([]GroupChange, error) {
	b, err := readDirFiles(base, hostspec.GroupsDir)
	if err != nil {
		return nil, err
	}
	h, err := readDirFiles(head, hostspec.GroupsDir)
	if err != nil {
		return nil, err
	}
	var out []GroupChange
	for name, content := range h {
		old, ok := b[name]
		switch {
		case !ok:
			out = append(out, GroupChange{Name: name, Status: StatusAdded})
		case !bytes.Equal(old, content):
			out = append(out, GroupChange{Name: name, Status: StatusModified})
		}
	}
	for name := range b {
		if _, ok := h[name]; !ok {
			out = append(out, GroupChange{Name: name, Status: StatusRemoved})
		}
	}
	slices.SortFunc(out, func(x, y GroupChange) int { return strings.Compare(x.Name, y.Name) })
	if out == nil {
		out = []GroupChange{}
	}
	return out, nil
}

// readDirFiles maps group names (file base names without .yaml/.yml) to
// their bytes.
func readDirFiles(fsys fs.FS, dir string) (map[string][]byte, error) {
	out := make(map[string][]byte)
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return out, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path.Join(dir, name), err)
		}
		out[strings.TrimSuffix(name, ext)] = data
	}
	return out, nil
}

func fileChanged(base, head fs.FS, name string) (bool, error) {
	read := func(fsys fs.FS) ([]byte, bool, error) {
		b, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", name, err)
		}
		return b, true, nil
	}
	b, bok, err := read(base)
	if err != nil {
		return false, err
	}
	h, hok, err := read(head)
	if err != nil {
		return false, err
	}
	return bok != hok || !bytes.Equal(b, h), nil
}
