package hostspec

import (
	"maps"
	"sync"
)

// baselineSharing can be turned off by tests, to compare hosts finished
// from their base's baseline with hosts finished from scratch.
var baselineSharing = true

// baseline is what finalize computes from a base alone, the same for every
// host of the base: built once, so that a host pays only for what its own
// layer changes. Read-only once built.
type baseline struct {
	// prov is the provenance of a host without a layer of its own.
	prov map[string]Source
	// sized holds copies of prov made with room for n more entries (n ->
	// map[string]Source): a host's map starts as a clone of one (a copy of
	// the table, about twice as fast as inserting entry by entry) that has
	// room for what its layer adds, so that it does not grow.
	sized sync.Map
	// etcConflicts[i] is the entry base.etcSorted[i] conflicts with within
	// the base, or nil.
	etcConflicts []*etcItem
	// health[i] is the check base.healthNames[i] finalized.
	health []baseCheck
	// update is the base's update policy; updateOK is false when it has a
	// problem (reported per host, by finalizing it again).
	update   UpdatePolicy
	updateOK bool
}

type baseCheck struct {
	hc    HealthCheck
	state checkState
}

type checkState uint8

const (
	checkKept    checkState = iota
	checkDropped            // disabled
	checkFailed             // finalized again per host, to report the problem
)

// provFor returns a new provenance map holding the baseline's, with room
// for what hl adds.
func (bl *baseline) provFor(hl *layer) map[string]Source {
	room := provRoom(hl)
	if m, ok := bl.sized.Load(room); ok {
		return maps.Clone(m.(map[string]Source))
	}
	m := make(map[string]Source, len(bl.prov)+room)
	maps.Copy(m, bl.prov)
	bl.sized.Store(room, m)
	return maps.Clone(m)
}

// provRoom is about how many provenance entries a host's layer adds to its
// base's (at least as many, but for an update: key it sets).
func provRoom(hl *layer) int {
	n := 2 + len(hl.etc) + 6*len(hl.health) // image.digest, machineID
	if hl.vars != nil {
		n += hl.vars.size()
	}
	if !hl.update.setsNothing() {
		n += 4
	}
	return n
}

// newBaseline finishes the base as for a host without a layer of its own.
// Its problems are not reported here: the parts that have any are
// finalized again for each host.
func (r *Repo) newBaseline(b *mergedState) *baseline {
	bl := &baseline{etcConflicts: make([]*etcItem, len(b.etcSorted)), health: make([]baseCheck, len(b.healthNames))}
	fz := &finalizing{prov: make(map[string]Source, 24+len(b.etcSorted)+6*len(b.healthNames)), spec: &HostSpec{}}
	r.finalizeImage(fz, b, emptyLayer)
	if b.vars != nil {
		b.vars.recordProv(fz.prov)
	}
	for i, it := range b.etcSorted {
		if bl.etcConflicts[i] = etcConflict(b.etc, nil, it); bl.etcConflicts[i] == nil {
			fz.prov[it.provKey] = it.src
		}
	}
	for i, name := range b.healthNames {
		h := b.health[name]
		errs := len(fz.errs)
		hc, ok := finalizeCheck(&h, fz.prov, fz.fail)
		switch {
		case len(fz.errs) > errs:
			bl.health[i].state = checkFailed
		case !ok:
			bl.health[i].state = checkDropped
		default:
			bl.health[i].hc = hc
		}
	}
	errs := len(fz.errs)
	bl.update = b.update.policy(fz.prov, fz.fail)
	bl.updateOK = len(fz.errs) == errs
	r.policyProv(fz.prov)
	bl.prov = fz.prov
	return bl
}
