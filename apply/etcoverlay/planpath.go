package etcoverlay

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/bootsync/bootsync/hostspec"
)

// path plans one host path: desired (d), managed (e), or both.
func (pl *planner) path(hp string, d *desiredFile, e *entry) {
	p := pl.plan
	rel := hp[1:]
	dirRel, name := splitRel(rel)
	dg := pl.w.digesterFor(d, e)
	obs, dirfd, ok := pl.observePath(hp, dirRel, name, dg)
	if !ok {
		return
	}
	eff, owned := pl.responsibility(hp, rel, e, obs)

	if d == nil || d.want == nil {
		pl.remove(hp, d, e, obs, eff, owned)
		return
	}
	if pl.imageShips(rel) {
		p.ImageShipped = append(p.ImageShipped, hp)
	}
	final, adopt := finalEntry(d, e, obs, eff, owned)

	switch obs.kind {
	case kindMissing:
		if eff != nil {
			p.Drift = append(p.Drift, Drift{Path: hp, Kind: DriftMissing, Want: stateOf(eff, 0), Corrected: true})
		}
		reason := "new file"
		if eff != nil {
			reason = "missing (bootsync wrote it before)"
		}
		pl.change(Change{Kind: ChangeCreate, Reason: reason, label: d.label}, hp, rel, d.f, obs, final, false)
	case kindRegular:
		pl.regular(hp, rel, dirfd, name, d, e, obs, eff, final, adopt)
	default:
		if owned && eff != nil {
			p.Drift = append(p.Drift, Drift{Path: hp, Kind: DriftReplaced, Want: stateOf(eff, 0), Got: obs.state()})
		}
		pl.problem(hp, fmt.Errorf("write %s: %w", hp, &refusedError{path: hp, what: "is " + obs.kind.String()}))
	}
}

// observePath looks at what is on disk at hp, whose directory is dirRel. It
// reports ok false when it could not and recorded a problem instead; dirfd
// is meaningful only when the directory exists.
func (pl *planner) observePath(hp, dirRel, name string, dg digester) (obs observed, dirfd int, ok bool) {
	obs = observed{kind: kindMissing}
	dirfd, err := pl.tree.dir(dirRel, false)
	switch {
	case err == nil:
		pl.parents[dirRel] = true
		obs, err = observe(dirfd, name, pl.w.diffLimit, dg)
		if err != nil {
			pl.problem(hp, fmt.Errorf("read %s: %w", hp, err))
			return obs, dirfd, false
		}
	case errors.Is(err, errMissing):
	default:
		pl.problem(hp, fmt.Errorf("check %s: %w", hp, err))
		return obs, dirfd, false
	}
	return obs, dirfd, true
}

// responsibility is what bootsync is responsible for at this path (eff),
// and whether the content on disk, if any, was put there by bootsync
// (owned). An interrupted pass left an intent (Pending): if the disk shows
// the intended outcome, the write (or removal) happened and is bootsync's;
// otherwise it did not, and the last recorded write still is.
func (pl *planner) responsibility(hp, rel string, e *entry, obs observed) (eff *fileState, owned bool) {
	p := pl.plan
	completed := false
	if e != nil && e.Pending != nil {
		p.Interrupted = append(p.Interrupted, hp)
		if pendingLanded(obs, e) {
			completed = true
			eff = e.Pending.State
			if e.Pending.BootID == "" || p.bootID == "" || e.Pending.BootID == p.bootID {
				p.recoveredOwed.add(owedFor(rel, e.Pending.OnChange))
			}
		}
	}
	if e != nil && !completed {
		eff = e.Written
	}
	return eff, eff != nil || completed
}

// finalEntry is the manifest entry for a desired file once it is written,
// and whether bootsync takes over (adopts) the file now on disk.
func finalEntry(d *desiredFile, e *entry, obs observed, eff *fileState, owned bool) (final *entry, adopt bool) {
	want := d.want
	final = &entry{
		Written:  want,
		Owner:    d.f.Owner,
		Group:    d.f.Group,
		Source:   sourceString(d.f.Source),
		OnChange: normalOnChange(d.f.OnChange),
		History:  history(e, eff, want.SHA256),
	}
	adopt = !owned && obs.kind == kindRegular && !revived(e, obs)
	switch {
	case adopt:
		final.Original = &fileState{SHA256: obs.sha, Mode: fileMode(obs.mode), UID: obs.uid, GID: obs.gid}
	case e != nil && (owned || revived(e, obs)):
		final.Original = e.Original
	}
	return final, adopt
}

// regular plans a desired file where a regular file is: nothing, a new
// record, a relabel or an update.
func (pl *planner) regular(hp, rel string, dirfd int, name string, d *desiredFile, e *entry, obs observed, eff *fileState, final *entry, adopt bool) {
	p := pl.plan
	want := d.want
	matches := obs.sha == want.SHA256 && obs.mode == uint32(want.Mode) && obs.uid == want.UID && obs.gid == want.GID
	if eff != nil && !matches {
		if kind, drifted := driftKind(obs, eff, e); drifted {
			p.Drift = append(p.Drift, Drift{Path: hp, Kind: kind, Want: stateOf(eff, 0), Got: obs.state(), Corrected: true})
		}
	}
	gotLabel, labelOK, err := checkLabel(dirfd, name, d.label)
	if err != nil {
		pl.problem(hp, fmt.Errorf("read %s: %w", hp, err))
		return
	}
	if matches && !labelOK {
		pl.relabel(hp, rel, d, obs, final, eff, gotLabel, adopt)
		return
	}
	if matches {
		if !entryEqual(e, final) {
			p.records = append(p.records, record{path: hp, final: final, backupFrom: adopt})
		}
		return
	}
	reason := describe(obs, want)
	if adopt {
		reason += " (bootsync takes the file over; the current one is kept and put back if the path leaves the spec)"
	}
	if !labelOK {
		reason += fmt.Sprintf(", SELinux label %s → %s", orNone(gotLabel), d.label)
	}
	pl.change(Change{Kind: ChangeUpdate, Reason: reason, label: d.label}, hp, rel, d.f, obs, final, adopt)
}

// remove plans a path that is Absent in the spec (d != nil) or left it
// (d == nil, prune).
func (pl *planner) remove(hp string, d *desiredFile, e *entry, obs observed, eff *fileState, owned bool) {
	p := pl.plan
	rel := hp[1:]
	forget := func() {
		if e != nil {
			p.records = append(p.records, record{path: hp})
		}
	}
	// keep keeps the entry (settling an interrupted write) while the file
	// is left alone.
	keep := func() {
		k := e.clone()
		k.Written, k.Pending = eff, nil
		if eff == nil {
			k.Written = e.Written
		}
		if !entryEqual(e, k) {
			p.records = append(p.records, record{path: hp, final: k})
		}
	}

	if d != nil { // absent: true
		switch obs.kind {
		case kindMissing:
			forget()
		case kindRegular, kindSymlink: // unlinking a symlink never touches its target
			oc := d.f.OnChange
			if oc == nil && e != nil {
				oc = e.OnChange
			}
			pl.change(Change{Kind: ChangeDelete, Reason: "absent in the spec"}, hp, rel, &hostspec.EtcFile{Path: hp, OnChange: oc, Source: d.f.Source}, obs, nil, false)
		default:
			pl.problem(hp, fmt.Errorf("remove %s: %w", hp, &refusedError{path: hp, what: "is " + obs.kind.String()}))
		}
		return
	}

	// Prune: the path left the spec.
	if e != nil && e.Pruned {
		pl.pruned(hp, rel, e, obs)
		return
	}
	if !owned || !obs.exists() {
		// Either bootsync never finished writing the path (what is there
		// is not its doing), or the file is gone already: then remember
		// what bootsync wrote, in case a rollback brings it back.
		if ts := tombstone(e, eff); owned && ts != nil {
			p.records = append(p.records, record{path: hp, final: ts})
			return
		}
		forget()
		return
	}
	if obs.kind != kindRegular {
		p.Drift = append(p.Drift, Drift{Path: hp, Kind: DriftReplaced, Want: stateOf(eff, 0), Got: obs.state()})
		keep()
		return
	}
	if !knownContent(obs.sha, eff, e) {
		// A local edit: never destroy it. Report it until someone resolves
		// it (deletes the file, or puts the path back into the spec).
		want := FileState{}
		if eff != nil {
			want = stateOf(eff, 0)
		}
		p.Drift = append(p.Drift, Drift{Path: hp, Kind: DriftModified, Want: want, Got: obs.state()})
		keep()
		return
	}
	pl.prune(hp, rel, e, tombstone(e, eff), obs, "left the spec")
}

// change completes and adds a Change. For writes, final.Written (or c.want
// for a restore) is what gets written.
func (pl *planner) change(c Change, hp, rel string, f *hostspec.EtcFile, obs observed, final *entry, backup bool) {
	c.Path, c.rel = hp, rel
	c.Before = obs.state()
	c.beforeKind = obs.kind
	c.OnChange = f.OnChange
	c.Source = sourceString(f.Source)
	c.final = final
	c.backupCurrent = backup
	if final != nil {
		c.want = final.Written
		c.content = f.Content
		c.Owner, c.Group = f.Owner, f.Group
	}
	if c.want != nil {
		c.After = stateOf(c.want, int64(len(c.content)))
	}
	if obs.kind == kindRegular {
		if obs.complete {
			c.BeforeContent = obs.content
		} else {
			c.ContentOmitted = true
		}
	}
	if c.want != nil {
		if len(c.content) <= pl.w.diffLimit {
			c.AfterContent = c.content
		} else {
			c.ContentOmitted = true
		}
	}
	c.owed = owedFor(rel, f.OnChange)
	c.digest = obs.digest
	if c.digest.keyed() || f.Secret != nil {
		// A secret's content is never shown, on either side.
		c.BeforeContent, c.AfterContent, c.ContentOmitted = nil, nil, true
	}
	pl.plan.Changes = append(pl.plan.Changes, c)
}

// imageShips reports whether the booted image ships the path: bootc keeps
// the image's default /etc under /usr/etc.
func (pl *planner) imageShips(rel string) bool {
	dirRel, name := splitRel("usr/" + rel)
	dirfd, err := pl.tree.dir(dirRel, false)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// findLeftovers lists temporary files of interrupted writes in every
// directory that holds a planned path.
func (pl *planner) findLeftovers() error {
	dirs := make([]string, 0, len(pl.parents))
	for d := range pl.parents {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		fd, err := pl.tree.dir(d, false)
		if err != nil {
			continue
		}
		names, err := leftoversAt(fd)
		if err != nil {
			return fmt.Errorf("list %s: %w", hostPath(d), err)
		}
		for _, n := range names {
			pl.plan.Leftovers = append(pl.plan.Leftovers, hostPath(path.Join(d, n)))
		}
	}
	return nil
}
