package etcoverlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/bootsync/bootsync/hostspec"
)

// ErrStalePlan is returned (wrapped) by Apply when what a plan was made from
// changed before it was applied: another Apply ran, the host rebooted, or a
// file changed on disk. Nothing is overwritten on a stale basis; plan again.
var ErrStalePlan = errors.New("the plan is stale (state changed since it was made); plan again")

// Plan is what Apply would do to bring the files under the root to the
// desired overlay, plus what the writer found on the way. It is made by a
// pure read of the disk and the manifest.
type Plan struct {
	Root    string   `json:"root"`
	Changes []Change `json:"changes"` // deletes first, then writes; by path
	// Drift lists managed files that differ from what bootsync last wrote.
	Drift []Drift `json:"drift"`
	// ImageShipped lists desired paths the image also ships
	// (/usr/etc/<path> exists): overriding them freezes them against image
	// updates (bootc's /etc merge keeps a locally modified file wholesale);
	// prefer a drop-in directory.
	ImageShipped []string  `json:"imageShipped"`
	Problems     []Problem `json:"problems"`
	// Interrupted lists paths a killed pass left unsettled; Apply records
	// how they ended up (written or not) without reporting drift.
	Interrupted []string `json:"interrupted"`
	// Leftovers are temporary files of interrupted writes; Apply removes
	// them.
	Leftovers []string `json:"leftovers"`
	// Owed are actions earlier passes left to do (their RunOnChange did not
	// run, or failed), in effect until the host reboots.
	Owed Actions `json:"owed"`

	generation    uint64
	bootID        string
	records       []record    // manifest updates that change nothing on disk
	recoveredOwed owedActions // what interrupted writes that did land still need
	manifestOwed  owedActions
}

// record is a manifest update without a disk change: settling an
// interrupted write, forgetting a path, or adopting a file that already
// holds the desired content.
type record struct {
	path       string
	final      *entry // nil: forget the path
	backupFrom bool   // keep the file now on disk as final.Original first
}

// NoOp reports whether Apply would change nothing: no file, no record, and
// no restart or reload owed. (A required reboot alone is not Apply's work;
// see Owed.RebootRequired.)
func (p *Plan) NoOp() bool {
	return len(p.Changes) == 0 && len(p.records) == 0 && len(p.Leftovers) == 0 && !p.Owed.systemctlWork()
}

// Err joins the plan's problems, nil when there are none.
func (p *Plan) Err() error {
	return errors.Join(p.problemErrs()...)
}

// problemErrs lists the plan's problems as errors.
func (p *Plan) problemErrs() []error {
	errs := make([]error, len(p.Problems))
	for i, pr := range p.Problems {
		errs[i] = pr
	}
	return errs
}

// desiredFile is a validated spec entry.
type desiredFile struct {
	f     *hostspec.EtcFile
	want  *fileState // nil when the entry is Absent
	label string     // the SELinux policy's label for the path ("": off)
}

type planner struct {
	w       *Writer
	tree    *dirTree
	ids     *idResolver
	m       *manifest
	plan    *Plan
	parents map[string]bool // directories that hold a planned path
}

// Plan compares the desired files with the disk under the root and with the
// manifest. It only reads. A path it cannot handle becomes a Problem (and is
// neither written nor pruned); the error is for failures that make the whole
// plan meaningless (unreadable manifest or root).
func (w *Writer) Plan(ctx context.Context, files []hostspec.EtcFile) (*Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plan /etc: %w", err)
	}
	m, err := w.loadManifest()
	if err != nil {
		return nil, fmt.Errorf("plan /etc: %w", err)
	}
	tree, err := openTree(w.root)
	if err != nil {
		return nil, fmt.Errorf("plan /etc: %w", err)
	}
	defer tree.Close()

	p := &Plan{Root: w.root, generation: m.Generation, bootID: w.bootID()}
	pl := &planner{w: w, tree: tree, ids: &idResolver{tree: tree}, m: m, plan: p, parents: map[string]bool{}}

	desired := make(map[string]*desiredFile, len(files))
	blocked := map[string]bool{} // listed but unusable: never pruned
	for i := range files {
		f := &files[i]
		if _, dup := desired[f.Path]; dup || blocked[f.Path] {
			if !blocked[f.Path] {
				pl.problem(f.Path, fmt.Errorf("plan %s: listed more than once", f.Path))
			}
			delete(desired, f.Path)
			blocked[f.Path] = true
			continue
		}
		d, err := pl.desired(f)
		if err != nil {
			pl.problem(f.Path, fmt.Errorf("plan %s: %w", f.Path, err))
			blocked[f.Path] = true
			continue
		}
		desired[f.Path] = d
	}

	paths := make([]string, 0, len(desired)+len(m.Files))
	for p := range desired {
		paths = append(paths, p)
	}
	for p := range m.Files {
		if _, ok := desired[p]; !ok && !blocked[p] {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, hp := range paths {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("plan /etc: %w", err)
		}
		pl.path(hp, desired[hp], m.Files[hp])
	}
	if err := pl.findLeftovers(); err != nil {
		return nil, fmt.Errorf("plan /etc: %w", err)
	}

	// Deletes first: a path removed from the spec may be in the way of a
	// directory another entry needs.
	slices.SortStableFunc(p.Changes, func(a, b Change) int {
		ad, bd := a.Kind == ChangeDelete, b.Kind == ChangeDelete
		switch {
		case ad && !bd:
			return -1
		case bd && !ad:
			return 1
		}
		return strings.Compare(a.Path, b.Path)
	})
	p.manifestOwed = m.owed(p.bootID)
	all := p.manifestOwed
	all.add(p.recoveredOwed)
	p.Owed = all.actions()
	return p, nil
}

func (pl *planner) problem(hp string, err error) {
	pl.plan.Problems = append(pl.plan.Problems, Problem{Path: hp, Err: err})
}

// desired validates one spec entry and resolves its owner and group.
func (pl *planner) desired(f *hostspec.EtcFile) (*desiredFile, error) {
	if _, err := checkTarget(f.Path); err != nil {
		return nil, err
	}
	if f.OnChange != nil {
		for _, u := range slices.Concat(f.OnChange.Restart, f.OnChange.Reload) {
			if err := checkUnitName(u); err != nil {
				return nil, fmt.Errorf("onChange: %w", err)
			}
		}
	}
	d := &desiredFile{f: f}
	if f.Absent {
		return d, nil
	}
	if uint32(f.Mode) > 0o7777 {
		return nil, fmt.Errorf("mode %o is not a permission (at most 07777)", uint32(f.Mode))
	}
	if err := pl.w.checkSecret(f); err != nil {
		return nil, err
	}
	sha := pl.w.digesterFor(d, nil).sum(f.Content)
	if f.SHA256 != "" && f.SHA256 != sha {
		return nil, fmt.Errorf("content does not match its sha256 (spec says %s, content is %s)", f.SHA256, sha)
	}
	uid, err := pl.ids.uid(f.Owner)
	if err != nil {
		return nil, err
	}
	gid, err := pl.ids.gid(f.Group)
	if err != nil {
		return nil, err
	}
	d.want = &fileState{SHA256: sha, Mode: fileMode(uint32(f.Mode)), UID: uid, GID: gid}
	if pl.w.labels != nil {
		if d.label, err = pl.w.labels.Label(f.Path); err != nil {
			return nil, fmt.Errorf("SELinux label: %w", err)
		}
	}
	return d, nil
}

// pendingLanded reports whether the disk shows the outcome of an
// interrupted write or removal. Content and metadata arrive together (the
// temporary file gets both before the rename), so a full match is proof. The
// content alone is proof too when it differs from what was there before the
// write; then a metadata difference is a later local change.
func pendingLanded(obs observed, e *entry) bool {
	ps := e.Pending.State
	if ps == nil {
		return !obs.exists()
	}
	if obs.kind != kindRegular || obs.sha != ps.SHA256 {
		return false
	}
	if obs.mode == uint32(ps.Mode) && obs.uid == ps.UID && obs.gid == ps.GID {
		return true
	}
	prev := e.Written
	if prev == nil {
		prev = e.Original
	}
	return prev == nil || prev.SHA256 != ps.SHA256
}

// driftKind classifies how a regular file differs from what bootsync last
// wrote (eff).
func driftKind(obs observed, eff *fileState, e *entry) (DriftKind, bool) {
	switch {
	case obs.sha != eff.SHA256 && knownContent(obs.sha, nil, e):
		return DriftReverted, true
	case obs.sha != eff.SHA256:
		return DriftModified, true
	case obs.mode != uint32(eff.Mode) || obs.uid != eff.UID || obs.gid != eff.GID:
		return DriftMetadata, true
	}
	return "", false
}

// knownContent reports whether sha is content bootsync wrote at the path.
func knownContent(sha string, eff *fileState, e *entry) bool {
	if eff != nil && eff.SHA256 == sha {
		return true
	}
	if e == nil {
		return false
	}
	if e.Written != nil && e.Written.SHA256 == sha {
		return true
	}
	return slices.Contains(e.History, sha)
}

// history is the list of earlier contents to remember once `now` is
// written.
func history(e *entry, eff *fileState, now string) []string {
	var h []string
	if e != nil {
		h = slices.Clone(e.History)
		if e.Written != nil {
			h = appendUnique(h, e.Written.SHA256)
		}
	}
	if eff != nil {
		h = appendUnique(h, eff.SHA256)
	}
	h = slices.DeleteFunc(h, func(s string) bool { return s == now })
	if len(h) > historyLimit {
		h = h[len(h)-historyLimit:]
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// owedFor is what a change of the file at rel needs once it is on disk.
func owedFor(rel string, oc *hostspec.OnChange) owedActions {
	var o owedActions
	// systemd reads unit files and drop-ins only on daemon-reload; a
	// restart without it would run the old definition.
	if strings.HasPrefix(rel, "etc/systemd/system/") {
		o.DaemonReload = true
	}
	if oc != nil {
		o.Restart = appendUnique(nil, oc.Restart...)
		o.Reload = appendUnique(nil, oc.Reload...)
		o.Reboot = oc.Reboot
	}
	return o
}

// entryEqual reports whether two manifest entries record the same thing.
func entryEqual(a, b *entry) bool {
	if a == nil || b == nil {
		return a == b
	}
	return statePtrEqual(a.Written, b.Written) && a.Pruned == b.Pruned && a.Owner == b.Owner && a.Group == b.Group && a.Source == b.Source &&
		onChangeEqual(a.OnChange, b.OnChange) && slices.Equal(a.History, b.History) &&
		statePtrEqual(a.Original, b.Original) && pendingEqual(a.Pending, b.Pending)
}

func statePtrEqual(a, b *fileState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func onChangeEqual(a, b *hostspec.OnChange) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Reboot == b.Reboot && slices.Equal(a.Restart, b.Restart) && slices.Equal(a.Reload, b.Reload)
}

func pendingEqual(a, b *pendingWrite) bool {
	if a == nil || b == nil {
		return a == b
	}
	return statePtrEqual(a.State, b.State) && onChangeEqual(a.OnChange, b.OnChange) && a.BootID == b.BootID
}

// normalOnChange drops empty parts, so that an entry compares equal to its
// JSON round trip and an unchanged spec records nothing.
func normalOnChange(oc *hostspec.OnChange) *hostspec.OnChange {
	if oc == nil || (len(oc.Restart) == 0 && len(oc.Reload) == 0 && !oc.Reboot) {
		return nil
	}
	n := &hostspec.OnChange{Reboot: oc.Reboot}
	if len(oc.Restart) > 0 {
		n.Restart = slices.Clone(oc.Restart)
	}
	if len(oc.Reload) > 0 {
		n.Reload = slices.Clone(oc.Reload)
	}
	return n
}

func describe(obs observed, want *fileState) string {
	var parts []string
	if obs.sha != want.SHA256 {
		parts = append(parts, "content differs")
	}
	if obs.mode != uint32(want.Mode) {
		parts = append(parts, fmt.Sprintf("mode %04o → %s", obs.mode, want.Mode))
	}
	if obs.uid != want.UID {
		parts = append(parts, fmt.Sprintf("owner %d → %d", obs.uid, want.UID))
	}
	if obs.gid != want.GID {
		parts = append(parts, fmt.Sprintf("group %d → %d", obs.gid, want.GID))
	}
	return strings.Join(parts, ", ")
}

// checkUnitName accepts systemd unit names (and nothing systemctl could
// take for an option).
func checkUnitName(u string) error {
	if u == "" || len(u) > 255 || u[0] == '-' {
		return fmt.Errorf("%q is not a systemd unit name", u)
	}
	for _, r := range u {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":-_.\\@", r)
		if !ok {
			return fmt.Errorf("%q is not a systemd unit name", u)
		}
	}
	return nil
}

func sourceString(s hostspec.Source) string {
	if s.File == "" {
		return ""
	}
	return s.String()
}

func splitRel(rel string) (dir, name string) {
	dir, name = path.Split(rel)
	return strings.TrimSuffix(dir, "/"), name
}

// bootID returns the kernel's boot ID, or "" when it cannot be read.
func (w *Writer) bootID() string {
	b, err := os.ReadFile(w.bootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
