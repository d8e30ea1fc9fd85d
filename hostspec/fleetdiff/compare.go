package fleetdiff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/bootsync/bootsync/hostspec"
)

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
	out := []FileChange{}
	for _, p := range sortedKeys(bm, hm) {
		b, h := present(bm[p]), present(hm[p])
		if b == nil && h == nil {
			continue
		}
		if b != nil && b.Secret != nil || h != nil && h.Secret != nil {
			if fc, changed := compareSecret(p, b, h); changed {
				out = append(out, fc)
			}
			continue
		}
		fc := FileChange{Path: p}
		switch {
		case b == nil:
			fc.Status, fc.Source = StatusAdded, h.Source
		case h == nil:
			fc.Status, fc.Source = StatusRemoved, b.Source
		default:
			if b.SHA256 == h.SHA256 && sameMeta(b, h) {
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

// Secret lines of a diff: all that is said about a secret's content.
const (
	SecretChanged   = "secret changed"
	SecretUnchanged = "secret unchanged"
)

// compareSecret compares a path where either side is a secret, from what
// is known without a key: the encrypted file, its ciphertext fingerprint
// and the template. Nothing derived from plaintext is shown or compared;
// a re-encryption of the same value counts as a change.
func compareSecret(p string, b, h *hostspec.EtcFile) (FileChange, bool) {
	fc := FileChange{Path: p, Secret: SecretChanged}
	switch {
	case b == nil:
		fc.Status, fc.Source, fc.HeadMeta = StatusAdded, h.Source, meta(h)
	case h == nil:
		fc.Status, fc.Source, fc.BaseMeta = StatusRemoved, b.Source, meta(b)
	default:
		changed := b.Secret == nil || h.Secret == nil || b.Secret.Changed(h.Secret)
		if !changed && sameMeta(b, h) {
			return fc, false
		}
		fc.Status, fc.Source, fc.BaseMeta, fc.HeadMeta = StatusModified, h.Source, meta(b), meta(h)
		if !changed {
			fc.Secret = SecretUnchanged
		}
	}
	fc.Diff = fc.Secret + "\n"
	return fc, true
}

// present treats an Absent entry as no file: the host will not have it.
func present(f *hostspec.EtcFile) *hostspec.EtcFile {
	if f == nil || f.Absent {
		return nil
	}
	return f
}

// meta is a file's "mode owner:group", as the report shows it.
func meta(f *hostspec.EtcFile) string {
	return f.Mode.String() + " " + f.Owner + ":" + f.Group
}

// sameMeta is meta(a) == meta(b) without building the strings: it runs
// for every file of every host compared, changed or not.
func sameMeta(a, b *hostspec.EtcFile) bool {
	return a.Mode == b.Mode && a.Owner == b.Owner && a.Group == b.Group
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
	out := []SettingChange{}
	for _, k := range sortedKeys(base, head) {
		if base[k] != head[k] {
			out = append(out, SettingChange{Field: k, Base: base[k], Head: head[k]})
		}
	}
	return out
}

// sortedKeys returns the keys of a and b, each once, sorted.
func sortedKeys[V any](a, b map[string]V) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
