package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"gopkg.in/yaml.v3"

	"github.com/bootsync/bootsync/apply/bootc"
)

// hostStatus renders the state as bootc's Host document, with every key a
// current bootc always prints. bootedOnly is `status --booted`.
func (s *State) hostStatus(bootedOnly bool) *bootc.Host {
	h := &bootc.Host{
		APIVersion: bootc.APIVersionV1,
		Kind:       bootc.KindBootcHost,
		Metadata:   bootc.ObjectMeta{Name: "host"},
		Spec:       bootc.HostSpec{BootOrder: bootc.BootOrderDefault},
	}
	if img := s.specImage(); img != nil {
		ref := *img
		h.Spec.Image = &ref
	}
	if s.RollbackQueued {
		h.Spec.BootOrder = bootc.BootOrderRollback
	}
	h.Status.RollbackQueued = s.RollbackQueued
	if s.Booted != nil {
		t := bootc.HostTypeBootcHost
		h.Status.Type = &t
		h.Status.Booted = s.entry(s.Booted, false)
	}
	if !bootedOnly {
		if s.Staged != nil {
			h.Status.Staged = s.entry(s.Staged, true)
		}
		if s.Rollback != nil {
			h.Status.Rollback = s.entry(s.Rollback, true)
		}
	}
	return h
}

// entry renders a deployment; softReboot says whether softRebootCapable
// applies (it is relative to the booted deployment).
func (s *State) entry(d *Deployment, softReboot bool) *bootc.BootEntry {
	store := bootc.StoreOstreeContainer
	e := &bootc.BootEntry{
		Image: &bootc.ImageStatus{
			Image:        d.Image,
			Version:      d.Version,
			Timestamp:    d.Timestamp,
			ImageDigest:  d.Digest,
			Architecture: d.Architecture,
		},
		CachedUpdate:      d.CachedUpdate,
		SoftRebootCapable: softReboot && s.softRebootCapable(d),
		DownloadOnly:      d == s.Staged && d.DownloadOnly,
		Store:             &store,
		Ostree:            &bootc.BootEntryOstree{Checksum: d.Checksum, DeploySerial: d.DeploySerial, Stateroot: "default"},
	}
	return e
}

// versionedDocument is the Host as a generic document with the keys the
// simulated bootc version did not print yet removed.
func versionedDocument(h *bootc.Host, v bootc.Version) (map[string]any, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	older := func(major, minor, patch int) bool {
		return !v.AtLeast(bootc.Version{Major: major, Minor: minor, Patch: patch})
	}
	if older(0, 1, 15) {
		doc["apiVersion"] = bootc.APIVersionV1Alpha1
	}
	status, _ := doc["status"].(map[string]any)
	if older(1, 16, 7) {
		delete(status, "readOnly")
	}
	if older(1, 14, 0) {
		delete(status, "usrOverlay")
	}
	for _, key := range []string{"staged", "booted", "rollback"} {
		entry, ok := status[key].(map[string]any)
		if !ok {
			continue
		}
		if older(1, 12, 0) {
			delete(entry, "downloadOnly")
		}
		if older(1, 7, 0) {
			delete(entry, "softRebootCapable")
		}
		if older(1, 11, 0) {
			delete(entry, "composefs")
		}
		if ostree, ok := entry["ostree"].(map[string]any); ok && older(1, 3, 0) {
			delete(ostree, "stateroot")
		}
		if older(1, 1, 7) {
			for _, img := range []string{"image", "cachedUpdate"} {
				if m, ok := entry[img].(map[string]any); ok {
					delete(m, "architecture")
				}
			}
		}
	}
	return doc, nil
}

// renderJSON prints what `bootc status --format=json` prints: one line, no
// trailing newline, RFC 8785 canonical (sorted keys) as bootc ≥ 1.5 does.
// Older bootc used struct order; the simulator sorts for every version,
// which no client may depend on anyway.
func renderJSON(doc map[string]any) ([]byte, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	out, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalize status: %w", err)
	}
	return out, nil
}

func renderYAML(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2) // as serde_yaml writes it
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	return buf.Bytes(), nil
}

// renderHuman is a short rendering in the spirit of bootc's
// human-readable format (which nobody may parse).
func renderHuman(h *bootc.Host) []byte {
	if !h.IsBootc() {
		return []byte("System is not deployed via bootc.\n")
	}
	var b strings.Builder
	line := func(mark, label string, e *bootc.BootEntry) {
		if e == nil || e.Image == nil {
			return
		}
		fmt.Fprintf(&b, "%s %s image: %s\n", mark, label, e.Image.Image.Image)
		fmt.Fprintf(&b, "        Digest: %s (%s)\n", e.Image.ImageDigest, e.Image.Architecture)
		if e.Image.Version != nil {
			fmt.Fprintf(&b, "       Version: %s\n", *e.Image.Version)
		}
		b.WriteString("\n")
	}
	line(" ", "Staged", h.Status.Staged)
	line("●", "Booted", h.Status.Booted)
	line(" ", "Rollback", h.Status.Rollback)
	return []byte(b.String())
}

func (inv *invocation) cmdStatus(args []string) error {
	v, err := inv.version()
	if err != nil {
		return err
	}
	fs := newFlagSet("bootc status")
	var format *string
	if v.AtLeast(bootc.Version{Minor: 1, Patch: 13}) {
		format = fs.String("format", "", "humanreadable | yaml | json")
	} else {
		format = new(string)
	}
	jsonFlag := fs.Bool("json", false, "Output in JSON format (deprecated: use --format)")
	formatVersion := new(string)
	if v.SupportsFormatVersion() {
		formatVersion = fs.String("format-version", "", "The desired format version: 0 or 1")
	}
	booted := fs.Bool("booted", false, "Only display status for the booted deployment")
	fs.BoolP("verbose", "v", false, "Include additional fields in human readable format")
	pos, help, err := fs.parse(args, inv.stdout)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 {
		return usage(fs.verb, "unexpected argument '%s' found", pos[0])
	}
	switch *format {
	case "", "humanreadable", "yaml", "json":
	default:
		return usage(fs.verb, "invalid value '%s' for '--format <FORMAT>'\n  [possible values: humanreadable, yaml, json]", *format)
	}
	if *formatVersion != "" {
		n, err := strconv.ParseUint(*formatVersion, 10, 32)
		if err != nil {
			return usage(fs.verb, "invalid value '%s' for '--format-version <FORMAT_VERSION>': invalid digit found in string", *formatVersion)
		}
		// bootc accepts 0 and 1, both meaning v1 (1 since v0.1.15).
		if n > 1 || (n == 1 && !v.AtLeast(bootc.Version{Minor: 1, Patch: 15})) {
			return fmt.Errorf("Status: Unsupported format version: %d", n)
		}
	}
	if inv.cfg.StatePath == "" {
		return fmt.Errorf("bootcsim: %s must name the simulator's state file", EnvState)
	}
	// The state file is replaced atomically, so a reader needs no lock
	// (bootc's status, too, runs alongside writers).
	s, err := loadState(inv.cfg.StatePath)
	if err != nil {
		return err
	}
	h := s.hostStatus(*booted)
	out := *format
	if out == "" {
		switch {
		case *jsonFlag:
			out = "json"
		case inv.cfg.StdoutIsTerminal:
			out = "humanreadable"
		default:
			out = "yaml"
		}
	}
	return inv.writeStatus(h, v, out)
}

// writeStatus prints h in the output format out, as version v writes it.
func (inv *invocation) writeStatus(h *bootc.Host, v bootc.Version, out string) error {
	if out == "humanreadable" {
		_, err := inv.stdout.Write(renderHuman(h))
		return err
	}
	doc, err := versionedDocument(h, v)
	if err != nil {
		return err
	}
	var data []byte
	if out == "json" {
		data, err = renderJSON(doc)
	} else {
		data, err = renderYAML(doc)
	}
	if err != nil {
		return err
	}
	_, err = inv.stdout.Write(data)
	return err
}
