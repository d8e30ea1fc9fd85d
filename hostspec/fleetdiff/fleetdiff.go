// Package fleetdiff compares what every host gets at two revisions of a
// fleet repository: the image, each /etc file (as a unified diff), health
// checks, update and image policy. It is what CI posts on a pull request, so
// its JSON form is a stable, documented interface (docs/diff-json.md).
package fleetdiff

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sync"

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
	// Secret is "secret changed" or "secret unchanged" for a file whose
	// content is a secret (either side): then there is no digest, size or
	// diff, only that line.
	Secret string `json:"secret,omitempty"`

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
	return compareHosts(ctx, base, head, names, names, opts)
}

// compareHosts renders the hosts in render (sorted) at both revisions and
// reports them; the other hosts of names, all the hosts there are, count
// as unchanged.
func compareHosts(ctx context.Context, base, head Revision, names, render []string, opts Options) (*Report, error) {
	budget := &diffBudget{inline: opts.InlineLimit, report: opts.ReportLimit}
	changes, err := compareAll(ctx, base, head, render, opts.Workers, budget)
	if err != nil {
		return nil, err
	}
	budget.trimReport(changes)
	rep := &Report{Schema: SchemaVersion, Base: base.Name, Head: head.Name, Hosts: []HostChange{}}
	rep.Summary.Total = len(names)
	rep.Summary.Unchanged = len(names) - len(render)
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

// batchSize is how many hosts are rendered together. Host files that
// Load only listed (hostspec.WithHostFilesOnDemand) are decoded one batch
// at a time, so memory holds one batch of parsed files, not the fleet's.
var batchSize = 4096 // a variable for tests, which split small fleets

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
	for start := 0; start < len(names); start += batchSize {
		batch := names[start:min(start+batchSize, len(names))]
		b, h, err := loadBatch(ctx, base, head, batch)
		if err != nil {
			return nil, err
		}
		err = compareBatch(ctx, b, h, batch, inBase, inHead, workers, budget, out[start:])
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadBatch returns the two revisions with the files of the given hosts
// decoded (each file the two have in common, once).
func loadBatch(ctx context.Context, base, head Revision, names []string) (Revision, Revision, error) {
	cache := hostspec.NewDecodeCache()
	var (
		rb, rh     *hostspec.Repo
		berr, herr error
		wg         sync.WaitGroup
	)
	wg.Go(func() { rb, berr = base.Repo.LoadHosts(ctx, names, cache) })
	wg.Go(func() { rh, herr = head.Repo.LoadHosts(ctx, names, cache) })
	wg.Wait()
	if berr != nil {
		return base, head, fmt.Errorf("load host files at %s: %w", base.Name, berr)
	}
	if herr != nil {
		return base, head, fmt.Errorf("load host files at %s: %w", head.Name, herr)
	}
	base.Repo, head.Repo = rb, rh
	return base, head, nil
}

// compareBatch compares the hosts of one batch in parallel into out.
func compareBatch(ctx context.Context, base, head Revision, names []string, inBase, inHead map[string]bool, workers int, budget *diffBudget, out []*HostChange) error {
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
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err // the first host's, in name order
		}
	}
	return nil
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
