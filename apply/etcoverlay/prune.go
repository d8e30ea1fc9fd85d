package etcoverlay

import (
	"fmt"
	"slices"

	"github.com/bootsync/bootsync/hostspec"
)

// Pruned paths. bootc rollback boots the old deployment with the /etc it
// had: a file bootsync pruned since can be there again. The manifest keeps
// a tombstone of each pruned path (what bootsync wrote there, and the
// original it put back), so such a file is pruned again instead of being
// taken for the administrator's.

// prune removes the file at a path that left the spec, or puts back the
// file bootsync replaced there (e.Original); the manifest then keeps ts,
// the path's tombstone (nothing when nil).
func (pl *planner) prune(hp, rel string, e, ts *entry, obs observed, why string) {
	src := &hostspec.EtcFile{Path: hp, OnChange: e.OnChange}
	if e.Original == nil {
		pl.change(Change{Kind: ChangeDelete, Reason: why, Prune: true}, hp, rel, src, obs, nil, false)
		pl.plan.Changes[len(pl.plan.Changes)-1].final = ts
		return
	}
	orig := e.Original
	if obs.sha == orig.SHA256 && obs.mode == uint32(orig.Mode) && obs.uid == orig.UID && obs.gid == orig.GID {
		pl.plan.records = append(pl.plan.records, record{path: hp, final: ts})
		return
	}
	content, err := pl.w.readOriginal(orig.SHA256)
	if err != nil {
		pl.problem(hp, fmt.Errorf("restore %s (it left the spec): read the file bootsync replaced: %w; the file is left as it is", hp, err))
		return
	}
	c := Change{Kind: ChangeRestore, Reason: why + "; putting back the file bootsync replaced", Prune: true}
	if pl.w.labels != nil {
		if c.label, err = pl.w.labels.Label(hp); err != nil {
			pl.problem(hp, fmt.Errorf("restore %s: SELinux label: %w", hp, err))
			return
		}
	}
	c.content = content
	c.want = orig
	pl.change(c, hp, rel, src, obs, nil, false)
	pl.plan.Changes[len(pl.plan.Changes)-1].final = ts
}

// tombstone is what the manifest keeps of a path bootsync pruned: what it
// wrote there (and the original it put back). Nil when nothing is known.
func tombstone(e *entry, eff *fileState) *entry {
	if e == nil {
		return nil
	}
	h := history(e, eff, "")
	if len(h) == 0 {
		return nil
	}
	return &entry{Pruned: true, History: h, Original: e.Original, OnChange: e.OnChange}
}

// pruned handles a path bootsync pruned earlier. A file holding content
// bootsync wrote there is back from an older /etc (a rollback): it is
// pruned again. Anything else there is someone else's: bootsync forgets
// the path.
func (pl *planner) pruned(hp, rel string, e *entry, obs observed) {
	settled := e.clone()
	settled.Pending = nil
	switch {
	case !obs.exists() || (e.Original != nil && obs.kind == kindRegular && obs.sha == e.Original.SHA256):
		if !entryEqual(e, settled) {
			pl.plan.records = append(pl.plan.records, record{path: hp, final: settled})
		}
	case revived(e, obs):
		pl.prune(hp, rel, settled, settled, obs, "left the spec; back from an older /etc (a rollback)")
	default:
		pl.plan.records = append(pl.plan.records, record{path: hp})
	}
}

// revived reports whether the file at a pruned path (e a tombstone) holds
// what bootsync wrote there before: back from an older /etc, it is
// bootsync's, not someone else's to take over.
func revived(e *entry, obs observed) bool {
	return e != nil && e.Pruned && obs.kind == kindRegular && slices.Contains(e.History, obs.sha)
}
