package hostspec

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// Keys each document and object may hold. Anything else is an error.
var (
	fleetKeys     = []string{"apiVersion", "kind", "metadata", "spec", "policy", "limits", "rollout"}
	groupKeys     = []string{"apiVersion", "kind", "metadata", "selector", "priority", "spec", "policy"}
	hostKeys      = []string{"apiVersion", "kind", "metadata", "spec", "policy"}
	lockKeys      = []string{"apiVersion", "kind", "images"}
	nameMetaKeys  = []string{"name"}
	hostMetaKeys  = []string{"name", "labels", "machineID"}
	specKeys      = []string{"image", "etc", "vars", "health", "update", "policy"}
	etcKeys       = []string{"path", "from", "content", "template", "mode", "owner", "group", "absent", "onChange"}
	onChangeKeys  = []string{"restart", "reload", "reboot"}
	healthFields  = []string{"name", "systemd", "http", "expect", "tcp", "command", "timeout", "interval", "retries", "required", "disabled"}
	updateKeys    = []string{"reboot", "windows", "fleetlock", "paused", "grace", "softReboot", "deferRebootWhileUsers", "maxDeferral"}
	windowKeys    = []string{"days", "start", "duration", "timezone"}
	fleetlockKeys = []string{"url", "group"}
	policyKeys    = []string{"registries", "requireSignatures"}
	selectorKeys  = []string{"hosts", "labels", "bucket"}
)

var knownKinds = []string{KindFleet, KindGroup, KindHost, KindLock}

// imageRef is an image reference that passed strict validation.
type imageRef struct {
	ref    string
	digest string // set when the reference is digest-pinned
}

// specDoc is the `spec:` of a Fleet, Group or Host as written.
type specDoc struct {
	image  opt[imageRef]
	vars   *varNode
	etc    []*etcEntry
	health []*healthPatch
	update updatePatch
}

// etcEntry is one item of `etc:` as written, before directory expansion.
type etcEntry struct {
	field       string
	src         Source
	path        opt[string]
	from        opt[string]
	content     opt[[]byte]
	contentNode *yaml.Node
	template    bool
	mode        opt[FileMode]
	owner       opt[string]
	group       opt[string]
	absent      bool
	onChange    *OnChange
}

// healthPatch is one item of `health:` as written: a new check in the
// lowest layer that names it, or changes to an inherited one.
type healthPatch struct {
	name     string
	keys     *healthKeys
	field    string
	src      Source
	systemd  opt[string]
	http     opt[string]
	tcp      opt[string]
	command  opt[[]string]
	expect   opt[string]
	timeout  opt[Duration]
	interval opt[Duration]
	retries  opt[int]
	required opt[bool]
	disabled opt[bool]
}

// healthKeys are the provenance keys of one check.
type healthKeys struct {
	check, systemd, http, tcp, command, expect, timeout, interval, retries, required string
}

func (h *healthPatch) types() []string {
	var out []string
	if h.systemd.set {
		out = append(out, "systemd")
	}
	if h.http.set {
		out = append(out, "http")
	}
	if h.tcp.set {
		out = append(out, "tcp")
	}
	if h.command.set {
		out = append(out, "command")
	}
	return out
}

// updatePatch is `update:` as written; also the merged state, since update
// merges key by key.
type updatePatch struct {
	reboot                opt[RebootStrategy]
	windows               opt[[]Window]
	fleetlock             opt[struct{}] // where `fleetlock:` was last written
	fleetlockURL          opt[string]
	fleetlockGroup        opt[string]
	paused                opt[bool]
	grace                 opt[Duration]
	softReboot            opt[bool]
	deferRebootWhileUsers opt[bool]
	maxDeferral           opt[Duration]
}

// apply lays hi over u key by key.
func (u *updatePatch) apply(hi *updatePatch) {
	over := func(dst *opt[bool], src opt[bool]) {
		if src.set {
			*dst = src
		}
	}
	if hi.reboot.set {
		u.reboot = hi.reboot
	}
	if hi.windows.set {
		u.windows = hi.windows
	}
	if hi.fleetlock.set {
		u.fleetlock = hi.fleetlock
	}
	if hi.fleetlockURL.set {
		u.fleetlockURL = hi.fleetlockURL
	}
	if hi.fleetlockGroup.set {
		u.fleetlockGroup = hi.fleetlockGroup
	}
	over(&u.paused, hi.paused)
	over(&u.softReboot, hi.softReboot)
	over(&u.deferRebootWhileUsers, hi.deferRebootWhileUsers)
	if hi.grace.set {
		u.grace = hi.grace
	}
	if hi.maxDeferral.set {
		u.maxDeferral = hi.maxDeferral
	}
}

type fleetDoc struct {
	name      string
	src       Source
	spec      specDoc
	policy    Policy
	policySrc map[string]Source
	limits    limitsDoc
	rollout   *Rollout
}

type groupDoc struct {
	name     string
	src      Source
	selector Selector
	priority int
	spec     specDoc
}

type hostDoc struct {
	name     string
	nameNode *yaml.Node
	src      Source
	labels   map[string]string
	spec     specDoc
	// machineID (metadata.machineID) is the /etc/machine-id of the one
	// machine this host file is for.
	machineID    string
	machineIDSrc Source
}

// decodeFile decodes one file of the fleet repository. wantKind is the kind
// the file's location calls for. It returns a *fleetDoc, *groupDoc,
// *hostDoc or *Lock (nil when not even the header could be read), and
// every problem found.
func decodeFile(file string, data []byte, wantKind string) (any, ErrorList) {
	d := &decoder{file: file}
	root := d.parseDocument(data)
	if root == nil {
		return nil, d.errs
	}
	kind, ok := d.header(root, wantKind)
	if !ok {
		return nil, d.errs
	}
	var doc any
	switch kind {
	case KindFleet:
		doc = d.fleet(root)
	case KindGroup:
		doc = d.group(root)
	case KindHost:
		doc = d.host(root)
	case KindLock:
		doc = d.lock(root)
	}
	// The document is returned even with problems, so that Load can still
	// check the files its valid parts refer to and report those too.
	return doc, d.errs
}

// header checks apiVersion and kind before anything else: with an unknown
// version the rest of the document cannot be read with this schema.
func (d *decoder) header(root *yaml.Node, wantKind string) (string, bool) {
	if !d.usable(root, "") {
		return "", false
	}
	if root.Kind != yaml.MappingNode {
		d.failf(root, "", "a document must be a mapping with apiVersion and kind, got %s", describe(root))
		return "", false
	}
	var versionNode, kindNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "apiVersion":
			versionNode = root.Content[i+1]
		case "kind":
			kindNode = root.Content[i+1]
		}
	}
	ok := true
	if versionNode == nil {
		d.failf(root, "apiVersion", "missing: add `apiVersion: %s`", APIVersion)
		ok = false
	} else if v, vok := d.text(versionNode, "apiVersion"); !vok {
		ok = false
	} else if v != APIVersion {
		d.failf(versionNode, "apiVersion", "unsupported version %q: this build of bootsync supports only %s", v, APIVersion)
		ok = false
	}
	if kindNode == nil {
		d.failf(root, "kind", "missing: add `kind: %s`", wantKind)
		return "", false
	}
	kind, kok := d.text(kindNode, "kind")
	if !kok {
		return "", false
	}
	if !contains(knownKinds, kind) {
		msg := fmt.Sprintf("unknown kind %q (known kinds: %s)", kind, strings.Join(knownKinds, ", "))
		if s := suggest(kind, knownKinds); s != "" {
			msg = fmt.Sprintf("unknown kind %q (did you mean %q?)", kind, s)
		}
		d.failf(kindNode, "kind", "%s", msg)
		return "", false
	}
	if kind != wantKind {
		switch {
		case kind == KindFleet:
			d.failf(kindNode, "kind", "a second Fleet document: the fleet is defined once, in %s; this file (under %s) must hold a %s", FleetFile, path.Dir(d.file), wantKind)
		case wantKind == KindFleet:
			d.failf(kindNode, "kind", "%s must hold the kind: Fleet document, found kind: %s", FleetFile, kind)
		default:
			d.failf(kindNode, "kind", "kind: %s does not belong in %s: %s", kind, d.file, placeOf(kind))
		}
		return "", false
	}
	return kind, ok
}

func placeOf(kind string) string {
	switch kind {
	case KindGroup:
		return "Group documents live in " + GroupsDir + "/"
	case KindHost:
		return "Host documents live in " + HostsDir + "/"
	case KindLock:
		return "the Lock document is " + LockFile
	}
	return "Fleet is " + FleetFile
}

func (d *decoder) fleet(root *yaml.Node) *fleetDoc {
	doc := &fleetDoc{src: d.src(root), policySrc: map[string]Source{}}
	d.mapping(root, "", fleetKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "metadata":
			d.mapping(v, f, nameMetaKeys, func(_ string, _, v *yaml.Node, f string) {
				if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
					doc.name = s
				}
			})
		case "spec":
			doc.spec = d.spec(v, f, true)
		case "policy":
			d.policy(v, f, doc)
		case "limits":
			doc.limits = d.limits(v, f)
		case "rollout":
			doc.rollout = d.rollout(v, f)
		}
	})
	return doc
}

func (d *decoder) group(root *yaml.Node) *groupDoc {
	doc := &groupDoc{src: d.src(root)}
	sawSelector := false
	d.mapping(root, "", groupKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "metadata":
			d.mapping(v, f, nameMetaKeys, func(_ string, _, v *yaml.Node, f string) {
				if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
					doc.name = s
				}
			})
		case "selector":
			sawSelector = true
			doc.selector = d.selector(v, f)
		case "priority":
			doc.priority, _ = d.integer(v, f, -1_000_000, 1_000_000)
		case "policy":
			d.policyElsewhere(v, f)
		case "spec":
			doc.spec = d.spec(v, f, false)
		}
	})
	if doc.name == "" && !d.hasKey(root, "metadata", "name") {
		d.failf(root, "metadata.name", "missing: every Group needs a name")
	}
	if !sawSelector {
		d.failf(root, "selector", "missing: a Group needs a selector (hosts, labels and/or bucket) saying which hosts it applies to")
	}
	return doc
}

func (d *decoder) host(root *yaml.Node) *hostDoc {
	doc := &hostDoc{src: d.src(root)}
	d.mapping(root, "", hostKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "metadata":
			d.mapping(v, f, hostMetaKeys, func(key string, _, v *yaml.Node, f string) {
				switch key {
				case "name":
					if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
						doc.name, doc.nameNode = s, v
					}
				case "labels":
					doc.labels, _ = d.stringMap(v, f)
				case "machineID":
					if s, ok := d.text(v, f); ok && d.checkMachineID(v, f, s) {
						doc.machineID, doc.machineIDSrc = s, d.src(v)
					}
				}
			})
		case "spec":
			doc.spec = d.spec(v, f, false)
		case "policy":
			d.policyElsewhere(v, f)
		}
	})
	if doc.name == "" && !d.hasKey(root, "metadata", "name") {
		d.failf(root, "metadata.name", "missing: every Host needs a name (the file's base name)")
	}
	return doc
}

// checkMachineID validates metadata.machineID: 32 lowercase hex digits,
// as in /etc/machine-id (machine-id(5)).
func (d *decoder) checkMachineID(n *yaml.Node, field, s string) bool {
	ok := len(s) == 32 && strings.Trim(s, "0123456789abcdef") == "" && strings.Trim(s, "0") != ""
	if !ok {
		d.failf(n, field, "%q is not a machine ID: want the 32 lowercase hexadecimal digits of the machine's /etc/machine-id (systemd-id128 machine-id prints it)", s)
	}
	return ok
}

// policyElsewhere reports `policy:` outside the top level of fleet.yaml:
// only the fleet may add requirements to the hosts' trust configuration.
func (d *decoder) policyElsewhere(v *yaml.Node, field string) {
	msg := "policy is only allowed at the top level of fleet.yaml (kind: Fleet): it applies to the whole fleet"
	if field == "spec.policy" && d.file == FleetFile {
		msg = "policy belongs at the top level of fleet.yaml, next to spec, not under it"
	}
	d.failf(v, field, "%s", msg)
}

// hasKey reports whether root.outer.inner is written at all, so a missing
// name is not reported again after its value was found invalid.
func (d *decoder) hasKey(root *yaml.Node, outer, inner string) bool {
	m := lookup(root, outer)
	return m != nil && lookup(m, inner) != nil
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkName validates a host or group name: it becomes part of file names,
// metrics labels and log lines.
func (d *decoder) checkName(n *yaml.Node, field, s string) bool {
	if msg := checkName(s); msg != "" {
		d.failf(n, field, "%s", msg)
		return false
	}
	return true
}

func checkName(s string) string {
	if len(s) > 253 {
		return fmt.Sprintf("name %q is longer than 253 characters", s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			(i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return fmt.Sprintf("invalid name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", s)
		}
	}
	if s == "" {
		return "name must not be empty"
	}
	return ""
}

func (d *decoder) selector(n *yaml.Node, field string) Selector {
	var s Selector
	some := false
	errsBefore := len(d.errs)
	d.mapping(n, field, selectorKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "hosts":
			globs, _ := d.stringList(v, f)
			for i, g := range globs {
				if _, err := path.Match(g, ""); err != nil {
					d.failf(v.Content[i], index(f, i), "invalid host glob %q: %v", g, err)
				}
			}
			s.Hosts = globs
			s.hostPrefixes = make([]string, len(globs))
			for i, g := range globs {
				s.hostPrefixes[i] = globPrefix(g)
			}
			some = some || len(globs) > 0
		case "labels":
			s.Labels, _ = d.stringMap(v, f)
			for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
				s.labelPairs = append(s.labelPairs, [2]string{k, s.Labels[k]})
			}
			some = some || len(s.Labels) > 0
		case "bucket":
			text, ok := d.text(v, f)
			if !ok {
				return
			}
			lo, hi, msg := parseBucketRange(text)
			if msg != "" {
				d.failf(v, f, "%s", msg)
				return
			}
			s.Bucket, s.bucketLo, s.bucketHi, s.hasBucket = text, lo, hi, true
			some = true
		}
	})
	if n.Kind == yaml.MappingNode && !some && len(d.errs) == errsBefore {
		d.failf(n, field, "empty selector: set hosts, labels and/or bucket (use hosts: [\"*\"] to match every host)")
	}
	return s
}

// parseBucketRange parses "lo-hi" or "n", both within 0..99.
func parseBucketRange(s string) (lo, hi int, msg string) {
	bad := func() (int, int, string) {
		return 0, 0, fmt.Sprintf("invalid bucket range %q: want \"lo-hi\" or \"n\" with 0 <= lo <= hi <= 99", s)
	}
	loText, hiText, isRange := strings.Cut(s, "-")
	if !isRange {
		hiText = loText
	}
	var err1, err2 error
	lo, err1 = strconv.Atoi(strings.TrimSpace(loText))
	hi, err2 = strconv.Atoi(strings.TrimSpace(hiText))
	if err1 != nil || err2 != nil || lo < 0 || hi > 99 || lo > hi {
		return bad()
	}
	return lo, hi, ""
}

func (d *decoder) policy(n *yaml.Node, field string, doc *fleetDoc) {
	d.mapping(n, field, policyKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "registries":
			list, ok := d.stringList(v, f)
			if !ok {
				return
			}
			for i, r := range list {
				if msg := checkRegistryPrefix(r); msg != "" {
					d.failf(v.Content[i], index(f, i), "%s", msg)
				}
			}
			doc.policy.Registries = list
			doc.policySrc["registries"] = d.src(v)
		case "requireSignatures":
			if b, ok := d.boolean(v, f); ok {
				doc.policy.RequireSignatures = b
				doc.policySrc["requireSignatures"] = d.src(v)
			}
		}
	})
}

// checkRegistryPrefix validates an allowed repository prefix such as
// "registry.example.com/os": a registry host with an optional path, no
// scheme, tag or digest.
func checkRegistryPrefix(s string) string {
	if strings.Contains(s, "://") {
		return fmt.Sprintf("registry prefix %q must not have a scheme: write it like registry.example.com/os", s)
	}
	if strings.ContainsAny(s, "@ \t") {
		return fmt.Sprintf("registry prefix %q must be a registry host and repository path, without tag or digest", s)
	}
	host, repo, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil {
		return fmt.Sprintf("registry prefix %q: invalid registry %q: %v", s, host, err)
	}
	if repo != "" {
		if _, err := name.NewRepository(host+"/"+repo, name.StrictValidation); err != nil {
			return fmt.Sprintf("registry prefix %q: %v", s, err)
		}
	}
	return ""
}

// spec decodes `spec:`. lowest is true for the Fleet, below which nothing
// can supply a missing part of a health check.
func (d *decoder) spec(n *yaml.Node, field string, lowest bool) specDoc {
	var s specDoc
	d.mapping(n, field, specKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "image":
			ref, ok := d.text(v, f)
			if !ok {
				return
			}
			parsed, err := ParseImageReference(ref)
			if err != nil {
				hint := " (want registry/repository:tag or registry/repository@sha256:digest)"
				if errors.Is(err, errTransportPrefix) {
					hint = ""
				}
				d.failf(v, f, "invalid image reference %q: %v%s", ref, err, hint)
				return
			}
			img := imageRef{ref: ref}
			if dg, ok := parsed.(name.Digest); ok {
				img.digest = dg.DigestStr()
			}
			s.image.put(img, d.src(v))
		case "vars":
			if v.Kind != yaml.MappingNode {
				if d.usable(v, f) {
					d.failf(v, f, "must be a mapping of names to values, got %s", describe(v))
				}
				return
			}
			s.vars, _ = d.varsNode(v, f, 0)
		case "etc":
			d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
				if e := d.etcEntry(item, f); e != nil {
					s.etc = append(s.etc, e)
				}
			})
		case "health":
			seen := map[string]*healthPatch{}
			d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
				h := d.healthPatch(item, f, lowest)
				if h == nil {
					return
				}
				if prev := seen[h.name]; prev != nil {
					d.failf(item, f, "duplicate health check %q (first at line %d)", h.name, prev.src.Line)
					return
				}
				seen[h.name] = h
				s.health = append(s.health, h)
			})
		case "update":
			s.update = d.update(v, f)
		case "policy":
			d.policyElsewhere(v, f)
		}
	})
	return s
}

func (d *decoder) etcEntry(n *yaml.Node, field string) *etcEntry {
	e := &etcEntry{field: field, src: d.src(n)}
	errsBefore := len(d.errs)
	if !d.mapping(n, field, etcKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "path":
			if p, ok := d.text(v, f); ok {
				e.path.put(p, d.src(v))
			}
		case "from":
			if p, ok := d.text(v, f); ok {
				if msg := checkFromPath(p); msg != "" {
					d.failf(v, f, "%s", msg)
					return
				}
				e.from.put(p, d.src(v))
			}
		case "content":
			if b, ok := d.content(v, f); ok {
				e.content.put(b, d.src(v))
				e.contentNode = v
			}
		case "template":
			e.template, _ = d.boolean(v, f)
		case "mode":
			if !d.usable(v, f) {
				return
			}
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				hint := ""
				if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
					hint = fmt.Sprintf(`: quote it, as in mode: "%s" (unquoted, YAML reads %s as a number)`, v.Value, v.Value)
				}
				d.failf(v, f, "must be a quoted octal string like \"0644\", got %s%s", describe(v), hint)
				return
			}
			m, err := ParseFileMode(v.Value)
			if err != nil {
				d.failf(v, f, "%v", err)
				return
			}
			e.mode.put(m, d.src(v))
		case "owner", "group":
			s, ok := d.text(v, f)
			if !ok {
				return
			}
			if msg := checkAccount(s); msg != "" {
				d.failf(v, f, "%s", msg)
				return
			}
			if key == "owner" {
				e.owner.put(s, d.src(v))
			} else {
				e.group.put(s, d.src(v))
			}
		case "absent":
			e.absent, _ = d.boolean(v, f)
		case "onChange":
			e.onChange = d.onChange(v, f)
		}
	}) {
		return nil
	}
	if len(d.errs) > errsBefore {
		return nil
	}
	// Rules across fields of one entry.
	switch {
	case e.absent:
		var extra []string
		for _, x := range []struct {
			name string
			set  bool
		}{{"content", e.content.set}, {"from", e.from.set}, {"template", lookup(n, "template") != nil}, {"mode", e.mode.set}, {"owner", e.owner.set}, {"group", e.group.set}} {
			if x.set {
				extra = append(extra, x.name)
			}
		}
		if len(extra) > 0 {
			d.failf(n, field, "absent: true removes the file, so %s cannot be set with it", strings.Join(extra, ", "))
			return nil
		}
		if !e.path.set {
			d.failf(n, field, "absent: true needs path: the file to remove")
			return nil
		}
	case e.content.set && e.from.set:
		d.failf(n, field, "content and from are both set: use one of them")
		return nil
	case !e.content.set && !e.from.set:
		d.failf(n, field, "set content, from, or absent: true")
		return nil
	case e.content.set && !e.path.set:
		d.failf(n, field, "inline content needs path: the file under /etc to write")
		return nil
	}
	if e.path.set {
		// A directory `from:` may target /etc itself; that is checked once the
		// repository says what `from:` is.
		allowRoot := e.from.set
		if msg := checkEtcPath(e.path.v, allowRoot); msg != "" {
			d.failf(lookup(n, "path"), join(field, "path"), "%s", msg)
			return nil
		}
	}
	return e
}

// checkEtcPath validates a target path: normalized, absolute, under /etc
// and not /etc itself (unless it is a directory entry's base).
func checkEtcPath(p string, allowRoot bool) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("path %q must be an absolute path under /etc", p)
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f {
			return fmt.Sprintf("path %q contains control characters", p)
		}
	}
	if msg := hiddenCharProblem(p); msg != "" {
		return "path " + msg
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Sprintf("path %q must not contain ..", p)
		}
	}
	if c := path.Clean(p); c != p {
		return fmt.Sprintf("path %q is not normalized: write %q", p, c)
	}
	if p == "/etc" {
		if allowRoot {
			return ""
		}
		return "path /etc is the directory itself: name a file under /etc"
	}
	if !strings.HasPrefix(p, "/etc/") {
		return fmt.Sprintf("path %q is not under /etc: bootsync only manages files in /etc (the rest of the OS comes from the image)", p)
	}
	return ""
}

// checkFromPath validates a `from:` path syntactically; symbolic links are
// checked against the repository at Load.
func checkFromPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return fmt.Sprintf("from %q is absolute: write a path relative to the repository root, like files/motd", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Sprintf("from %q escapes the repository: .. is not allowed", p)
		}
	}
	if !validRepoPath(p) {
		return fmt.Sprintf("from %q is not a clean relative path: write %q", p, path.Clean(p))
	}
	return ""
}

func validRepoPath(p string) bool {
	if p == "." || p == "" || path.Clean(p) != p || strings.HasPrefix(p, "../") {
		return false
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f || r == '\\' {
			return false
		}
	}
	return true
}

// checkAccount validates an owner or group: a numeric id or a user name.
func checkAccount(s string) string {
	if msg, numeric := checkNumericAccount(s); numeric {
		return msg
	}
	if len(s) > 32 {
		return fmt.Sprintf("%q is not a user or group name (at most 32 characters) or a numeric id", s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' ||
			(i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.')) ||
			(i == len(s)-1 && i > 0 && r == '$')
		if !ok {
			return fmt.Sprintf("%q is not a user or group name or a numeric id", s)
		}
	}
	return ""
}

func (d *decoder) onChange(n *yaml.Node, field string) *OnChange {
	oc := &OnChange{}
	d.mapping(n, field, onChangeKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "restart", "reload":
			units, ok := d.stringList(v, f)
			if !ok {
				return
			}
			for i, u := range units {
				if msg := checkUnit(u); msg != "" {
					d.failf(v.Content[i], index(f, i), "%s", msg)
				}
			}
			if key == "restart" {
				oc.Restart = units
			} else {
				oc.Reload = units
			}
		case "reboot":
			oc.Reboot, _ = d.boolean(v, f)
		}
	})
	if len(oc.Restart) == 0 && len(oc.Reload) == 0 && !oc.Reboot {
		return nil
	}
	return oc
}

// checkUnit validates a systemd unit name loosely: it is passed to
// systemctl as one argument, so it must not look like an option.
func checkUnit(u string) string {
	if strings.HasPrefix(u, "-") || strings.ContainsAny(u, " \t\n/") {
		return fmt.Sprintf("invalid systemd unit name %q", u)
	}
	return ""
}

func (d *decoder) healthPatch(n *yaml.Node, field string, lowest bool) *healthPatch {
	h := &healthPatch{field: field, src: d.src(n)}
	errsBefore := len(d.errs)
	if !d.mapping(n, field, healthFields, func(key string, _, v *yaml.Node, f string) {
		src := d.src(v)
		switch key {
		case "name":
			if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
				h.name = s
			}
		case "systemd":
			if s, ok := d.text(v, f); ok {
				if msg := checkUnit(s); msg != "" {
					d.failf(v, f, "%s", msg)
					return
				}
				h.systemd.put(s, src)
			}
		case "http":
			if s, ok := d.text(v, f); ok {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					d.failf(v, f, "invalid URL %q: want http://host[:port]/path or https://…", s)
					return
				}
				h.http.put(s, src)
			}
		case "tcp":
			if s, ok := d.text(v, f); ok {
				host, port, err := net.SplitHostPort(s)
				if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
					d.failf(v, f, "invalid address %q: want host:port, like 127.0.0.1:5432", s)
					return
				}
				h.tcp.put(s, src)
			}
		case "command":
			argv, ok := d.stringList(v, f)
			if !ok {
				return
			}
			if len(argv) == 0 {
				d.failf(v, f, "must not be empty: give the program and its arguments")
				return
			}
			if !strings.HasPrefix(argv[0], "/") {
				d.failf(v, f, "the program %q must be an absolute path: it runs without a shell or PATH lookup", argv[0])
				return
			}
			h.command.put(argv, src)
		case "expect":
			if s, ok := d.scalarText(v, f); ok {
				h.expect.put(s, src)
			}
		case "timeout":
			if x, ok := d.durationAtLeast(v, f, MinCheckTimeout); ok {
				h.timeout.put(x, src)
			}
		case "interval":
			if x, ok := d.durationAtLeast(v, f, MinCheckInterval); ok {
				h.interval.put(x, src)
			}
		case "retries":
			if x, ok := d.integer(v, f, 0, 1000); ok {
				h.retries.put(x, src)
			}
		case "required":
			if x, ok := d.boolean(v, f); ok {
				h.required.put(x, src)
			}
		case "disabled":
			if x, ok := d.boolean(v, f); ok {
				h.disabled.put(x, src)
			}
		}
	}) {
		return nil
	}
	if len(d.errs) > errsBefore {
		return nil
	}
	if h.name == "" {
		d.failf(n, join(field, "name"), "missing: every health check needs a name")
		return nil
	}
	switch types := h.types(); {
	case len(types) > 1:
		d.failf(n, field, "health check %q has %d types (%s): set exactly one of systemd, http, tcp, command", h.name, len(types), strings.Join(types, ", "))
		return nil
	case len(types) == 0 && lowest && !(h.disabled.set && h.disabled.v):
		d.failf(n, field, "health check %q has no type: set one of systemd, http, tcp, command", h.name)
		return nil
	case h.expect.set && len(types) == 1 && types[0] != "http":
		d.failf(lookup(n, "expect"), join(field, "expect"), "expect only applies to http checks, not %s", types[0])
		return nil
	}
	return h
}

func (d *decoder) update(n *yaml.Node, field string) updatePatch {
	var u updatePatch
	d.mapping(n, field, updateKeys, func(key string, _, v *yaml.Node, f string) {
		src := d.src(v)
		switch key {
		case "reboot":
			s, ok := d.text(v, f)
			if !ok {
				return
			}
			switch r := RebootStrategy(s); r {
			case RebootImmediate, RebootWindow, RebootFleetLock, RebootWindowFleetLock, RebootManual:
				u.reboot.put(r, src)
			default:
				d.failf(v, f, "invalid reboot strategy %q: want immediate, window, fleetlock, window+fleetlock or manual", s)
			}
		case "windows":
			var windows []Window
			okAll := true
			ok := d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
				w, ok := d.window(item, f)
				okAll = okAll && ok
				windows = append(windows, w)
			})
			if ok && okAll {
				u.windows.put(windows, src)
			}
		case "fleetlock":
			u.fleetlock.put(struct{}{}, src)
			d.mapping(v, f, fleetlockKeys, func(key string, _, v *yaml.Node, f string) {
				s, ok := d.text(v, f)
				if !ok {
					return
				}
				if key == "url" {
					uu, err := url.Parse(s)
					if err != nil || (uu.Scheme != "http" && uu.Scheme != "https") || uu.Host == "" {
						d.failf(v, f, "invalid URL %q: want https://host[:port][/path]", s)
						return
					}
					u.fleetlockURL.put(s, d.src(v))
				} else {
					u.fleetlockGroup.put(s, d.src(v))
				}
			})
		case "paused":
			if b, ok := d.boolean(v, f); ok {
				u.paused.put(b, src)
			}
		case "softReboot":
			if b, ok := d.boolean(v, f); ok {
				u.softReboot.put(b, src)
			}
		case "deferRebootWhileUsers":
			if b, ok := d.boolean(v, f); ok {
				u.deferRebootWhileUsers.put(b, src)
			}
		case "grace":
			if x, ok := d.duration(v, f); ok {
				u.grace.put(x, src)
			}
		case "maxDeferral":
			if x, ok := d.duration(v, f); ok {
				u.maxDeferral.put(x, src)
			}
		}
	})
	return u
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// window decodes one maintenance window. Days are normalized to lower-case
// three-letter names, all seven when omitted; the time zone defaults to UTC.
func (d *decoder) window(n *yaml.Node, field string) (Window, bool) {
	w := Window{Timezone: "UTC"}
	errsBefore := len(d.errs)
	var sawStart, sawDuration bool
	if !d.mapping(n, field, windowKeys, func(key string, _, v *yaml.Node, f string) {
		switch key {
		case "days":
			days, ok := d.stringList(v, f)
			if !ok {
				return
			}
			if len(days) == 0 {
				d.failf(v, f, "must not be empty (leave days out for every day)")
				return
			}
			for i, day := range days {
				norm := normalizeDay(day)
				if norm == "" {
					d.failf(v.Content[i], index(f, i), "invalid day %q: want mon, tue, wed, thu, fri, sat or sun", day)
					continue
				}
				if contains(w.Days, norm) {
					d.failf(v.Content[i], index(f, i), "day %q is listed twice", day)
					continue
				}
				w.Days = append(w.Days, norm)
			}
		case "start":
			sawStart = true
			s, ok := d.text(v, f)
			if ok && !validClock(s) {
				d.failf(v, f, "invalid start time %q: want HH:MM on a 24-hour clock, like \"02:00\"", s)
				return
			}
			w.Start = s
		case "duration":
			sawDuration = true
			x, ok := d.duration(v, f)
			if ok && time.Duration(x) > 7*24*time.Hour {
				d.failf(v, f, "duration %s is longer than a week", x)
				return
			}
			w.Duration = x
		case "timezone":
			s, ok := d.text(v, f)
			if !ok {
				return
			}
			if msg := checkTimezone(s); msg != "" {
				d.failf(v, f, "%s", msg)
				return
			}
			w.Timezone = s
		}
	}) {
		return w, false
	}
	if !sawStart {
		d.failf(n, join(field, "start"), "missing: when the window opens, like \"02:00\"")
	}
	if !sawDuration {
		d.failf(n, join(field, "duration"), "missing: how long the window stays open, like 3h")
	}
	if w.Days == nil {
		w.Days = append([]string(nil), weekdays...)
	} else {
		// Keep the week's order so equal windows compare equal.
		var sorted []string
		for _, wd := range weekdays {
			if contains(w.Days, wd) {
				sorted = append(sorted, wd)
			}
		}
		w.Days = sorted
	}
	return w, len(d.errs) == errsBefore
}

func normalizeDay(s string) string {
	s = strings.ToLower(s)
	for _, wd := range weekdays {
		if s == wd {
			return wd
		}
	}
	for _, full := range []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} {
		if s == full {
			return full[:3]
		}
	}
	return ""
}

func validClock(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	return err1 == nil && err2 == nil && h >= 0 && h < 24 && m >= 0 && m < 60 &&
		s[0] >= '0' && s[0] <= '9' && s[3] >= '0' && s[3] <= '9'
}

// zoneCache remembers time.LoadLocation results: loading reads the zone
// database, and a fleet names few zones many times.
var zoneCache sync.Map // name -> string (problem, "" when valid)

func checkTimezone(s string) string {
	if v, ok := zoneCache.Load(s); ok {
		return v.(string)
	}
	msg := ""
	if s == "Local" || s == "" {
		msg = fmt.Sprintf("time zone %q is not allowed: name an IANA zone like Europe/Berlin, or UTC", s)
	} else if _, err := time.LoadLocation(s); err != nil {
		msg = fmt.Sprintf("unknown time zone %q: want an IANA name like Asia/Seoul or UTC (%v)", s, err)
	}
	zoneCache.Store(s, msg)
	return msg
}

func (d *decoder) lock(root *yaml.Node) *Lock {
	l := &Lock{Images: map[string]string{}, sources: map[string]Source{}}
	d.mapping(root, "", lockKeys, func(key string, _, v *yaml.Node, f string) {
		if key != "images" {
			return
		}
		d.mapping(v, f, nil, func(ref string, k, v *yaml.Node, f string) {
			f = "images[" + ref + "]"
			parsed, err := ParseImageReference(ref)
			if err != nil {
				d.failf(k, f, "invalid image reference %q: %v", ref, err)
				return
			}
			if _, isDigest := parsed.(name.Digest); isDigest {
				d.failf(k, f, "%q is already pinned by digest: the lock maps tags to digests", ref)
				return
			}
			dg, ok := d.text(v, f)
			if !ok {
				return
			}
			if msg := checkDigest(dg); msg != "" {
				d.failf(v, f, "%s", msg)
				return
			}
			l.Images[ref] = dg
			l.sources[ref] = d.src(v)
		})
	})
	return l
}

// checkDigest validates "algorithm:hex" the way image references do.
func checkDigest(s string) string {
	if _, err := name.NewDigest("example.invalid/x@"+s, name.StrictValidation); err != nil {
		return fmt.Sprintf("invalid digest %q: want sha256:<64 hex digits>", s)
	}
	return ""
}
