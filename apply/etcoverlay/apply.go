package etcoverlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/internal/faultpoint"
)

// Apply carries out a plan made by the same Writer:
//
//  1. remove temporary files of interrupted writes;
//  2. keep the files bootsync is about to replace for the first time;
//  3. record the intent of every change in the manifest (durably);
//  4. write and remove the files, each atomically and durably, refusing any
//     that changed on disk since the plan (ErrStalePlan);
//  5. record the outcome and the actions the changes owe.
//
// A crash anywhere leaves a state the next Plan understands: each file is
// either as before or as intended, and both are known to be bootsync's.
//
// Paths the plan could not handle (Problems) and changes that failed are
// returned as the error, joined; the Result still lists what was applied.
// Actions in the Result are what RunOnChange should run now.
func (w *Writer) Apply(ctx context.Context, p *Plan) (*Result, error) {
	if err := w.checkPlanFor(p); err != nil {
		return nil, err
	}
	unlock, err := w.lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply /etc: %w", err)
	}
	defer unlock()
	faultpoint.Reach("locked")

	m, err := w.loadManifest()
	if err != nil {
		return nil, fmt.Errorf("apply /etc: %w", err)
	}
	bootID := w.bootID()
	if err := checkFresh(p, m, bootID); err != nil {
		return nil, err
	}
	errs := p.problemErrs()
	res := &Result{}

	if err := w.removeStaleStateTemps(); err != nil {
		return nil, fmt.Errorf("apply /etc: clean state directory %s: %w", w.stateDir, err)
	}
	tree, err := openTree(w.root)
	if err != nil {
		return nil, fmt.Errorf("apply /etc: %w", err)
	}
	defer tree.Close()

	for _, lo := range p.Leftovers {
		if err := removeLeftover(tree, lo); err != nil {
			errs = append(errs, err)
		}
	}

	owed := m.owed(bootID)
	owed.add(p.recoveredOwed)
	if len(p.Changes) == 0 && len(p.records) == 0 {
		// A pass killed right after recording its outcome may have left
		// kept originals behind.
		if err := w.collectOriginals(m); err != nil {
			errs = append(errs, fmt.Errorf("apply /etc: remove kept originals no longer needed: %w", err))
		}
		res.Actions = owed.actions()
		return res, errors.Join(errs...)
	}

	// Keep the files bootsync takes over, before the intent that refers to
	// them is recorded.
	failed, skipRecord, kerrs := w.keepOriginals(ctx, tree, p)
	errs = append(errs, kerrs...)
	faultpoint.Reach("originals-kept")

	intent, anyIntent, err := w.recordIntent(ctx, m, p, failed, bootID)
	if err != nil {
		return nil, err
	}

	done, thisReboot, aerrs := applyChanges(ctx, tree, p, failed, res, &owed)
	errs = append(errs, aerrs...)

	// Record the outcome. A change that failed keeps its intent: the next
	// Plan looks at the disk to see how far it got.
	outcome := outcomeOf(intent, p, done, skipRecord, owed, bootID, anyIntent)
	if err := w.saveManifest(context.WithoutCancel(ctx), outcome); err != nil {
		return nil, fmt.Errorf("apply /etc: record outcome: %w", errors.Join(append(errs, err)...))
	}
	faultpoint.Reach("outcome-recorded")
	if err := w.collectOriginals(outcome); err != nil {
		errs = append(errs, fmt.Errorf("apply /etc: remove kept originals no longer needed: %w", err))
	}
	res.Actions = owed.actions()
	res.Actions.RebootRequired = res.Actions.RebootRequired || thisReboot
	return res, errors.Join(errs...)
}

// checkPlanFor refuses a missing plan and one made for another root.
func (w *Writer) checkPlanFor(p *Plan) error {
	if p == nil {
		return errors.New("apply /etc: no plan")
	}
	if p.Root != w.root {
		return fmt.Errorf("apply /etc: the plan is for root %s, this writer writes under %s", p.Root, w.root)
	}
	return nil
}

// checkFresh refuses a plan made before another apply or a reboot: what it
// saw may no longer be so.
func checkFresh(p *Plan, m *manifest, bootID string) error {
	if m.Generation != p.generation {
		return fmt.Errorf("apply /etc: another apply recorded changes since the plan was made: %w", ErrStalePlan)
	}
	if bootID != p.bootID {
		return fmt.Errorf("apply /etc: the host rebooted since the plan was made: %w", ErrStalePlan)
	}
	return nil
}

// keepOriginals keeps the files the plan's changes and records take over.
// It reports which changes failed and which records to skip, as they must
// not go ahead without the original kept.
func (w *Writer) keepOriginals(ctx context.Context, tree *dirTree, p *Plan) (failed, skipRecord []bool, errs []error) {
	failed = make([]bool, len(p.Changes))
	skipRecord = make([]bool, len(p.records))
	for i := range p.Changes {
		c := &p.Changes[i]
		if c.backupCurrent {
			if err := w.keepOriginal(ctx, tree, c.rel, c.final.Original); err != nil {
				errs = append(errs, fmt.Errorf("write %s: keep the file it replaces: %w", c.Path, err))
				failed[i] = true
			}
		}
	}
	for i, r := range p.records {
		if r.backupFrom {
			if err := w.keepOriginal(ctx, tree, r.path[1:], r.final.Original); err != nil {
				errs = append(errs, fmt.Errorf("record %s: keep the file bootsync takes over: %w", r.path, err))
				skipRecord[i] = true
			}
		}
	}
	return failed, skipRecord, errs
}

// recordIntent durably records the intent of every change that has not
// failed, in the next generation of the manifest, before any is written.
func (w *Writer) recordIntent(ctx context.Context, m *manifest, p *Plan, failed []bool, bootID string) (intent *manifest, anyIntent bool, err error) {
	intent = m.clone()
	intent.Generation++
	for i := range p.Changes {
		c := &p.Changes[i]
		if failed[i] {
			continue
		}
		e := intent.Files[c.Path]
		if e == nil {
			e = &entry{}
			intent.Files[c.Path] = e
		}
		e.Pending = &pendingWrite{State: c.want, OnChange: normalOnChange(c.OnChange), BootID: bootID}
		if c.backupCurrent {
			e.Original = c.final.Original
		}
		anyIntent = true
	}
	if anyIntent {
		if err := w.saveManifest(ctx, intent); err != nil {
			return nil, false, fmt.Errorf("apply /etc: record intent: %w", err)
		}
		faultpoint.Reach("intent-recorded")
	}
	return intent, anyIntent, nil
}

// applyChanges writes and removes the files of the changes that have not
// failed, until ctx ends, adding what each applied change owes to owed.
func applyChanges(ctx context.Context, tree *dirTree, p *Plan, failed []bool, res *Result, owed *owedActions) (done []bool, thisReboot bool, errs []error) {
	done = make([]bool, len(p.Changes))
	for i := range p.Changes {
		c := &p.Changes[i]
		if failed[i] {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("apply /etc: %w", err))
			break
		}
		if err := applyChange(tree, c); err != nil {
			errs = append(errs, err)
			continue
		}
		done[i] = true
		res.Applied = append(res.Applied, *c)
		owed.add(c.owed)
		thisReboot = thisReboot || c.owed.Reboot
	}
	return done, thisReboot, errs
}

// outcomeOf is the manifest after the apply: the intent with the changes
// done and the records kept set, and the actions still owed.
func outcomeOf(intent *manifest, p *Plan, done, skipRecord []bool, owed owedActions, bootID string, anyIntent bool) *manifest {
	outcome := intent.clone()
	for i := range p.Changes {
		if done[i] {
			setEntry(outcome, p.Changes[i].Path, p.Changes[i].final)
		}
	}
	for i, r := range p.records {
		if !skipRecord[i] {
			setEntry(outcome, r.path, r.final)
		}
	}
	persisted := owed
	if bootID == "" {
		// Without a boot ID a reboot cannot be noticed, so a recorded
		// "reboot required" could never be cleared.
		persisted.Reboot = false
	}
	persisted.BootID = bootID
	outcome.Owed = nil
	if !persisted.empty() {
		outcome.Owed = &persisted
	}
	if !anyIntent {
		outcome.Generation++
	}
	return outcome
}

// keepOriginal reads the file at rel in full, checks it is still the one
// the plan saw, and keeps it in the state directory.
func (w *Writer) keepOriginal(ctx context.Context, tree *dirTree, rel string, want *fileState) error {
	dirRel, name := splitRel(rel)
	dirfd, err := tree.dir(dirRel, false)
	if err != nil {
		return err
	}
	obs, err := observe(dirfd, name, -1, w.digesterLike(want.SHA256))
	if err != nil {
		return err
	}
	if obs.kind != kindRegular || obs.sha != want.SHA256 {
		return fmt.Errorf("it changed on disk since the plan was made: %w", ErrStalePlan)
	}
	return w.saveOriginal(ctx, obs.sha, obs.content)
}

// applyChange writes or removes one file, after checking it is still what
// the plan saw: a file edited since must not be overwritten or pruned
// without being reported first.
func applyChange(tree *dirTree, c *Change) error {
	dirRel, name := splitRel(c.rel)
	verb := "write"
	if c.want == nil {
		verb = "remove"
	}
	dirfd, err := tree.dir(dirRel, c.want != nil)
	if errors.Is(err, errMissing) && c.want == nil {
		return nil // the directory, hence the file, is gone already
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, c.Path, err)
	}
	obs, err := observe(dirfd, name, 0, c.digest)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, c.Path, err)
	}
	if obs.kind != c.beforeKind || obs.state() != c.Before {
		return fmt.Errorf("%s %s: it changed on disk since the plan was made: %w", verb, c.Path, ErrStalePlan)
	}
	if c.want == nil {
		if err := removeAt(dirfd, name); err != nil {
			return fmt.Errorf("remove %s: %w", c.Path, err)
		}
		return nil
	}
	if obs.exists() && obs.kind != kindRegular {
		return fmt.Errorf("write %s: %w", c.Path, &refusedError{path: c.Path, what: "is " + obs.kind.String()})
	}
	if err := writeFileAt(dirfd, name, c.content, uint32(c.want.Mode), c.want.UID, c.want.GID, c.label); err != nil {
		return fmt.Errorf("write %s: %w", c.Path, err)
	}
	return nil
}

func removeLeftover(tree *dirTree, hp string) error {
	dirRel, name := splitRel(hp[1:])
	if !strings.HasPrefix(name, tempPrefix) {
		return nil
	}
	dirfd, err := tree.dir(dirRel, false)
	if errors.Is(err, errMissing) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove leftover temporary file %s: %w", hp, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("remove leftover temporary file %s: %w", hp, err)
	}
	if k := kindOf(uint32(st.Mode)); k != kindRegular && k != kindSymlink {
		return fmt.Errorf("remove leftover temporary file %s: %w", hp, &refusedError{path: hp, what: "is " + k.String()})
	}
	if err := removeAt(dirfd, name); err != nil {
		return fmt.Errorf("remove leftover temporary file %s: %w", hp, err)
	}
	return nil
}

func setEntry(m *manifest, hp string, e *entry) {
	if e == nil {
		delete(m.Files, hp)
		return
	}
	m.Files[hp] = e.clone()
}

// RunOnChange runs the systemctl actions of an Apply's Result: daemon-reload
// first when unit files changed, then restarts, then reloads, one unit per
// command, so each failure names its unit and carries systemctl's stderr.
// Actions that succeed are cleared from the manifest; failed ones stay owed
// and are returned by the next Apply until they succeed or the host
// reboots. A required reboot is reported, not performed: the agent decides
// when to reboot.
func (w *Writer) RunOnChange(ctx context.Context, res *Result) error {
	if res == nil || !res.Actions.systemctlWork() {
		return nil
	}
	unlock, err := w.lock(ctx)
	if err != nil {
		return fmt.Errorf("run onChange actions: %w", err)
	}
	defer unlock()

	a := res.Actions
	var ran owedActions
	var errs []error
	reloaded := true
	if a.DaemonReload {
		if err := w.runSystemctl(ctx, "daemon-reload"); err != nil {
			// Restarting now would run the units' old definitions.
			errs = append(errs, fmt.Errorf("run onChange actions: %w; units not restarted or reloaded", err))
			reloaded = false
		} else {
			ran.DaemonReload = true
		}
		faultpoint.Reach("daemon-reloaded")
	}
	if reloaded {
		for _, verb := range []string{"restart", "reload"} {
			units := a.Restart
			if verb == "reload" {
				units = a.Reload
			}
			for _, u := range units {
				if err := w.runSystemctl(ctx, verb, u); err != nil {
					errs = append(errs, fmt.Errorf("run onChange actions: %w", err))
					continue
				}
				if verb == "restart" {
					ran.Restart = append(ran.Restart, u)
				} else {
					ran.Reload = append(ran.Reload, u)
				}
				faultpoint.Reach(verb + "ed")
			}
		}
	}

	if err := w.clearOwed(context.WithoutCancel(ctx), ran); err != nil {
		errs = append(errs, fmt.Errorf("run onChange actions: %w", err))
	}
	faultpoint.Reach("owed-cleared")
	return errors.Join(errs...)
}

// clearOwed removes actions that ran from the manifest's owed actions.
func (w *Writer) clearOwed(ctx context.Context, ran owedActions) error {
	if ran.empty() {
		return nil
	}
	loaded, err := w.loadManifest()
	if err != nil {
		return err
	}
	if loaded.Owed == nil {
		return nil
	}
	m := loaded.clone()
	o := m.Owed
	if ran.DaemonReload {
		o.DaemonReload = false
	}
	// A restart also reloads the unit's configuration.
	o.Restart = slices.DeleteFunc(o.Restart, func(u string) bool { return slices.Contains(ran.Restart, u) })
	o.Reload = slices.DeleteFunc(o.Reload, func(u string) bool {
		return slices.Contains(ran.Reload, u) || slices.Contains(ran.Restart, u)
	})
	if o.empty() {
		m.Owed = nil
	}
	return w.saveManifest(ctx, m)
}

func (w *Writer) runSystemctl(ctx context.Context, args ...string) error {
	argv := append(slices.Clone(w.systemctl), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	// A child that keeps stderr open must not hang us after it was killed.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return nil
}

// limitedWriter keeps at most n bytes and discards the rest.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Managed lists the paths the manifest records, for `bootsync status`.
func (w *Writer) Managed(ctx context.Context) ([]ManagedFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list managed /etc files: %w", err)
	}
	m, err := w.loadManifest()
	if err != nil {
		return nil, fmt.Errorf("list managed /etc files: %w", err)
	}
	out := make([]ManagedFile, 0, len(m.Files))
	for hp, e := range m.Files {
		if e.Pruned {
			continue // left the spec: remembered, not managed
		}
		mf := ManagedFile{Path: hp, Owner: e.Owner, Group: e.Group, Source: e.Source,
			ReplacedOriginal: e.Original != nil, Interrupted: e.Pending != nil}
		st := e.Written
		if st == nil && e.Pending != nil {
			st = e.Pending.State
		}
		if st != nil {
			mf.SHA256, mf.Mode, mf.UID, mf.GID = st.SHA256, st.Mode, st.UID, st.GID
		}
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b ManagedFile) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}
