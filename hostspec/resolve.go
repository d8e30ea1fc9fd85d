package hostspec

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// mergedState is the fleet and a set of groups merged: the part of a
// host's spec that many hosts share. It is cached by the Repo and never
// changes once built; a host's own layer is laid over it in finalize
// without copying it.
type mergedState struct {
	groups []string
	image  opt[imageRef]
	vars   *varNode
	etc    map[string]*etcItem
	health map[string]healthEntry
	update updatePatch
	// recipients accumulate over the layers: a host holds every key its
	// fleet and groups declare for it, and its own.
	recipients []recipientDecl

	// Filled in when the state is complete, for finalize.
	etcSorted   []*etcItem // by path
	healthNames []string   // sorted
	baseline    *baseline

	// rendered caches the output of templates that read nothing but vars
	// of this state (see templateDeps): *tmpl -> rendered.
	rendered sync.Map
}

// renderSharing can be turned off by tests, to compare shared rendering
// with rendering every host.
var renderSharing = true

type rendered struct {
	content []byte
	sha     string
}

// render renders t for one host, reusing the output rendered for another
// host of this state when the template cannot tell the two apart. Shared
// output is read-only, like static file content.
func (s *mergedState) render(t *tmpl, hostVars *varNode, data *templateData) ([]byte, string, *Error) {
	shared := renderSharing && t.deps.sharedWith(hostVars)
	if shared {
		if v, ok := s.rendered.Load(t); ok {
			r := v.(*rendered)
			return r.content, r.sha, nil
		}
	}
	out, err := t.render(data)
	if err != nil {
		return nil, "", err
	}
	sha := sha256Hex(out)
	if shared {
		s.rendered.Store(t, &rendered{content: out, sha: sha})
	}
	return out, sha, nil
}

// apply lays one layer over the state being built: scalars and lists are
// replaced, vars and update merge key by key, etc entries by path and
// health checks by name, field by field.
func (s *mergedState) apply(l *layer) {
	if l.image.set {
		s.image = l.image
	}
	s.vars = mergeVars(s.vars, l.vars)
	for _, it := range l.etc {
		s.etc[it.path] = it
	}
	for _, p := range l.health {
		h, exists := s.health[p.name]
		h.apply(p, exists)
		s.health[p.name] = h
	}
	s.update.apply(&l.update)
	s.recipients = append(s.recipients, l.recipients...)
}

// base returns the fleet and the given groups merged, from the cache when
// another host matched the same groups before.
func (r *Repo) base(idx []int) *mergedState {
	key := make([]byte, 0, 2*len(idx))
	for _, i := range idx {
		key = binary.AppendUvarint(key, uint64(i))
	}
	r.basesMu.RLock()
	b := r.bases[string(key)]
	r.basesMu.RUnlock()
	if b != nil {
		return b
	}
	b = &mergedState{etc: map[string]*etcItem{}, health: map[string]healthEntry{}}
	b.apply(r.fleet.layer)
	for _, i := range idx {
		b.apply(r.groups[i].layer)
		b.groups = append(b.groups, r.groups[i].Name)
	}
	b.etcSorted = make([]*etcItem, 0, len(b.etc))
	for _, it := range b.etc {
		b.etcSorted = append(b.etcSorted, it)
	}
	slices.SortFunc(b.etcSorted, func(x, y *etcItem) int { return strings.Compare(x.path, y.path) })
	b.healthNames = slices.Sorted(maps.Keys(b.health))
	b.baseline = r.newBaseline(b)
	r.basesMu.Lock()
	if prev := r.bases[string(key)]; prev != nil {
		b = prev
	} else {
		r.bases[string(key)] = b
	}
	r.basesMu.Unlock()
	return b
}

// Resolve computes the desired state of one host: fleet.yaml, then every
// matching group (ascending priority, ties by name), then hosts/<host>.yaml
// when it exists, with templates rendered. A host without a file gets the
// fleet and the groups its name, labels and bucket select. extraLabels come
// from the host's local configuration; labels in the host's file win.
//
// Problems that only show for this host (a template failing, no image, an
// update policy that cannot work) are returned as an ErrorList.
//
// Content of files that are not templates is shared between HostSpecs of
// the same Repo: treat EtcFile.Content as read-only.
func (r *Repo) Resolve(ctx context.Context, host string, extraLabels map[string]string) (*HostSpec, error) {
	spec, err := r.resolveSpec(ctx, host, extraLabels)
	if err != nil {
		return nil, err
	}
	return spec, nil
}

// resolveSpec is Resolve, except that a spec with problems is returned
// too (with the problems as the error), for its warnings.
func (r *Repo) resolveSpec(ctx context.Context, host string, extraLabels map[string]string) (*HostSpec, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resolve host %s: %w", host, err)
	}
	if msg := checkName(host); msg != "" {
		return nil, fmt.Errorf("resolve host: %s", msg)
	}
	h, declared := r.hosts[host]
	if !declared && r.skipped[host] {
		return nil, fmt.Errorf("resolve host %s: its file was not loaded (the repository was loaded for other hosts)", host)
	}
	labels := make(map[string]string, len(extraLabels)+4)
	maps.Copy(labels, extraLabels)
	hl, file := emptyLayer, FleetFile
	if declared {
		maps.Copy(labels, h.Labels)
		hl, file = h.layer, h.Source.File
	}
	bucket := Bucket(host)
	base := r.base(r.matchGroups(host, labels, bucket))
	spec, errs := r.finalize(ctx, host, file, labels, bucket, base, hl)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resolve host %s: %w", host, err) // a render may have been cut short
	}
	if len(errs) > 0 {
		return spec, errs.err()
	}
	if declared && h.MachineID != "" {
		spec.MachineID, spec.Provenance["machineID"] = h.MachineID, h.machineIDSrc
	}
	return spec, nil
}

var emptyLayer = &layer{}

// finalize lays the host's own layer over the shared base and turns the
// result into a HostSpec: defaults, checks across layers, rendering and
// provenance. It starts from the base's baseline, so that only what the
// host's layer changes is computed per host.
func (r *Repo) finalize(ctx context.Context, host, file string, labels map[string]string, bucket int, base *mergedState, hl *layer) (*HostSpec, ErrorList) {
	bl := base.baseline
	var prov map[string]Source
	if baselineSharing {
		prov = bl.provFor(hl)
	} else {
		bl = nil
		prov = make(map[string]Source, 24+len(base.etcSorted)+len(hl.etc)+6*len(base.healthNames))
	}
	fz := &finalizing{host: host, file: file, prov: prov, baseline: bl, spec: &HostSpec{
		Host:       host,
		Labels:     labels,
		Bucket:     bucket,
		Revision:   r.revision,
		Groups:     append([]string{}, base.groups...),
		Provenance: prov,
	}}
	spec := fz.spec
	if bl != nil && hl.image.set {
		delete(prov, "image.digest") // the base's image may have had one
	}
	r.finalizeImage(fz, base, hl)
	spec.Vars = flattenVars(base.vars, hl.vars, prov, bl != nil)
	r.finalizeEtc(ctx, fz, base, hl)
	fz.checkSecretRecipients(slices.Concat(base.recipients, hl.recipients))
	finalizeHealth(fz, base, hl)
	spec.Update = finalizeUpdate(fz, base, hl)

	// Policy (fleet.yaml only).
	spec.Policy = Policy{Registries: slices.Clone(r.fleet.Policy.Registries), RequireSignatures: r.fleet.Policy.RequireSignatures}
	if bl == nil {
		r.policyProv(prov)
	}
	spec.Warnings = fz.warns
	return spec, fz.errs
}

func (r *Repo) policyProv(prov map[string]Source) {
	prov["policy.registries"] = r.fleet.policySrc["registries"]
	prov["policy.requireSignatures"] = r.fleet.policySrc["requireSignatures"]
}

// finalizeUpdate lays the host's update settings over the base's; most
// hosts set none and get the baseline's policy.
func finalizeUpdate(fz *finalizing, base *mergedState, hl *layer) UpdatePolicy {
	if bl := fz.baseline; bl != nil && bl.updateOK && hl.update.setsNothing() {
		up := bl.update
		if up.Windows != nil {
			up.Windows = cloneWindows(up.Windows)
		}
		if up.FleetLock != nil {
			fl := *up.FleetLock
			up.FleetLock = &fl
		}
		return up
	}
	// Setting keys never unsets one, so the policy overwrites every key
	// of the baseline's it changes.
	u := base.update
	u.apply(&hl.update)
	return u.policy(fz.prov, fz.fail)
}

// finalizing is one host's spec being finished, and its problems.
type finalizing struct {
	host, file string // file: where problems without a place of their own are
	spec       *HostSpec
	prov       map[string]Source
	// baseline is the base's, when the host is finished from it: prov
	// then starts as its provenance.
	baseline *baseline
	errs     ErrorList
	warns    ErrorList
	// check is finalizeHealth's scratch, allocated when a check is merged
	// (merging through healthObject's function values moves a local to
	// the heap, once per check); most hosts' checks come from the baseline.
	check *healthEntry
}

func (fz *finalizing) fail(src Source, field, format string, args ...any) {
	fz.errs = append(fz.errs, fz.problem(src, field, fmt.Sprintf(format, args...)))
}

// problem is a problem of this host at src, or in its own file when src
// has none.
func (fz *finalizing) problem(src Source, field, msg string) *Error {
	f := src.File
	if f == "" {
		f = fz.file
	}
	return &Error{File: f, Line: src.Line, Column: src.Column, Field: field, Host: fz.host, Msg: msg}
}

// warn records what is allowed but cannot be checked; the message starts
// "warning:", as Repo.Warnings' do.
func (fz *finalizing) warn(src Source, field, format string, args ...any) {
	fz.warns = append(fz.warns, fz.problem(src, field, "warning: "+fmt.Sprintf(format, args...)))
}

// finalizeImage picks the highest layer's image and its pinned digest.
func (r *Repo) finalizeImage(fz *finalizing, base *mergedState, hl *layer) {
	image := base.image
	if hl.image.set {
		image = hl.image
	}
	if !image.set {
		fz.fail(Source{}, "spec.image", "no image: set spec.image in %s, in a group that selects this host, or in its own file", FleetFile)
		return
	}
	img := image.v
	fz.spec.Image = Image{Ref: img.ref, Digest: img.digest, Source: image.src}
	fz.prov["image"] = image.src
	if img.digest == "" && r.lock != nil {
		if dg, ok := r.lock.Images[img.ref]; ok {
			fz.spec.Image.Digest, fz.spec.Image.Locked = dg, true
			fz.prov["image.digest"] = r.lock.sources[img.ref]
		}
	}
}

// finalizeEtc renders /etc: the base's entries and the host's, both sorted
// by path, with the host's entry winning for the same path.
func (r *Repo) finalizeEtc(ctx context.Context, fz *finalizing, base *mergedState, hl *layer) {
	spec := fz.spec
	data := &templateData{Host: templateHost{Name: spec.Host, Labels: spec.Labels, Bucket: spec.Bucket}, Vars: spec.Vars, ctx: ctx, limits: &r.limits}
	spec.Etc = make([]EtcFile, 0, mergedLen(base.etcSorted, hl.etc))
	bi, hi := 0, 0
	for bi < len(base.etcSorted) || hi < len(hl.etc) {
		switch {
		case hi == len(hl.etc) || (bi < len(base.etcSorted) && base.etcSorted[bi].path < hl.etc[hi].path):
			fz.etcEntry(base, hl, base.etcSorted[bi], bi, data)
			bi++
		case bi == len(base.etcSorted) || hl.etc[hi].path < base.etcSorted[bi].path:
			fz.etcEntry(base, hl, hl.etc[hi], -1, data)
			hi++
		default: // the host's entry replaces the base's
			fz.etcEntry(base, hl, hl.etc[hi], -1, data)
			bi++
			hi++
		}
	}
}

// etcEntry finishes one entry: base.etcSorted[bi], or the host's when bi
// is -1.
func (fz *finalizing) etcEntry(base *mergedState, hl *layer, it *etcItem, bi int, data *templateData) {
	bl := fz.baseline
	var conflict *etcItem
	if bl != nil && bi >= 0 && len(hl.etc) == 0 {
		conflict = bl.etcConflicts[bi]
	} else {
		conflict = etcConflict(base.etc, hl.etc, it)
	}
	if conflict != nil {
		if bl != nil {
			delete(fz.prov, it.provKey) // the baseline's entry, if it had one
		}
		what := "written as a file"
		if conflict.absent {
			what = "marked absent"
		}
		fz.fail(it.src, it.provKey, "%s is inside %s, which is %s at %s", it.path, conflict.path, what, conflict.src)
		return
	}
	if bl == nil || bi < 0 || bl.etcConflicts[bi] != nil {
		fz.prov[it.provKey] = it.src
	}
	f := EtcFile{Path: it.path, Mode: it.mode, Owner: it.owner, Group: it.group, Absent: it.absent, Source: it.src}
	if it.onChange != nil {
		oc := *it.onChange
		oc.Restart, oc.Reload = slices.Clone(oc.Restart), slices.Clone(oc.Reload)
		f.OnChange = &oc
	}
	switch {
	case it.absent:
	case it.secret != nil:
		if !fz.secretEntry(&f, it, data) {
			return
		}
	case it.tmpl != nil:
		out, sha, terr := base.render(it.tmpl, hl.vars, data)
		if terr != nil {
			terr.Field, terr.Host = it.provKey, fz.host
			fz.errs = append(fz.errs, terr)
			return
		}
		f.Content, f.SHA256 = out, sha
	default:
		f.Content, f.SHA256 = it.static, it.sha
	}
	fz.spec.Etc = append(fz.spec.Etc, f)
}

// secretEntry fills in a secret entry: the reference to its encrypted
// file and, for a template, the preview rendered with placeholders (never
// shared with other hosts: the agent renders it again with the values).
func (fz *finalizing) secretEntry(f *EtcFile, it *etcItem, data *templateData) bool {
	ref := secretRef(it.secret, it.tmpl)
	if it.tmpl != nil {
		ref.data = *data
		ref.data.ctx = nil
		ref.data.Secrets = it.secret.placeholders()
		pd := ref.data
		pd.ctx = data.ctx
		out, terr := it.tmpl.render(&pd)
		if terr != nil {
			terr.Field, terr.Host = it.provKey, fz.host
			fz.errs = append(fz.errs, terr)
			return false
		}
		ref.Preview = string(out)
	}
	f.Secret = ref
	return true
}

// finalizeHealth lays the host's checks over the base's, by name. Checks
// the host does not touch come from the baseline when there is one.
func finalizeHealth(fz *finalizing, base *mergedState, hl *layer) {
	bl := fz.baseline
	fz.spec.Health = make([]HealthCheck, 0, len(base.healthNames)+len(hl.health))
	bi, hi := 0, 0
	for bi < len(base.healthNames) || hi < len(hl.health) {
		var h *healthEntry
		switch {
		case hi == len(hl.health) || (bi < len(base.healthNames) && base.healthNames[bi] < hl.health[hi].name):
			if bl != nil && bl.health[bi].state != checkFailed {
				if c := &bl.health[bi]; c.state == checkKept {
					hc := c.hc
					hc.Command = slices.Clone(hc.Command)
					fz.spec.Health = append(fz.spec.Health, hc)
				}
				bi++
				continue
			}
			h = fz.scratchCheck()
			*h = base.health[base.healthNames[bi]]
			bi++
		default:
			p := hl.health[hi]
			hi++
			h = fz.scratchCheck()
			*h = healthEntry{}
			var exists bool
			if bi < len(base.healthNames) && base.healthNames[bi] == p.name {
				*h, exists = base.health[p.name], true
				bi++
				if bl != nil {
					h.keys.forget(fz.prov) // the baseline's keys of the check
				}
			}
			h.apply(p, exists)
		}
		if hc, ok := finalizeCheck(h, fz.prov, fz.fail); ok {
			fz.spec.Health = append(fz.spec.Health, hc)
		}
	}
}

func (fz *finalizing) scratchCheck() *healthEntry {
	if fz.check == nil {
		fz.check = new(healthEntry)
	}
	return fz.check
}

// mergedLen is the number of distinct paths in two lists of items sorted
// by path.
func mergedLen(lo, hi []*etcItem) int {
	n, i, j := 0, 0, 0
	for i < len(lo) && j < len(hi) {
		switch c := strings.Compare(lo[i].path, hi[j].path); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			i++
			j++
		}
		n++
	}
	return n + len(lo) - i + len(hi) - j
}

// provOpt sets *dst from o when o is set and records where the value came
// from; defaults get an empty Source ("(default)").
func provOpt[T any](prov map[string]Source, key string, dst *T, o opt[T]) {
	if o.set {
		*dst = o.v
	}
	prov[key] = o.src
}

// etcConflict returns an entry at a parent directory of it: a path cannot
// be both a file (or a removed path) and a directory holding another
// managed file. Removing a path inside a removed path is harmless. items
// is sorted by path.
func etcConflict(base map[string]*etcItem, host []*etcItem, it *etcItem) *etcItem {
	for _, q := range it.parents {
		other := base[q]
		if i, found := slices.BinarySearchFunc(host, q, func(x *etcItem, p string) int { return strings.Compare(x.path, p) }); found {
			other = host[i]
		}
		if other != nil && !(other.absent && it.absent) {
			return other
		}
	}
	return nil
}
