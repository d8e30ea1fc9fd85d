package hostspec

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteExplain prints every resolved value of spec with the file and line
// that set it: the answer to "what does web-01 get, and why".
func WriteExplain(w io.Writer, spec *HostSpec) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rev := spec.Revision
	if rev == "" {
		rev = "the working tree"
	}
	fmt.Fprintf(tw, "# host %s at %s (bucket %d)\n", spec.Host, rev, spec.Bucket)
	fmt.Fprintf(tw, "# groups, in the order applied: %s\n", orNone(strings.Join(spec.Groups, ", ")))
	fmt.Fprintf(tw, "# labels: %s\n", orNone(formatLabels(spec.Labels)))
	fmt.Fprintln(tw, "VALUE\tRESOLVED TO\tSET BY")

	var generic map[string]any
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("explain %s: %w", spec.Host, err)
	}
	if err := json.Unmarshal(data, &generic); err != nil {
		return fmt.Errorf("explain %s: %w", spec.Host, err)
	}
	keys := make([]string, 0, len(spec.Provenance))
	for k := range spec.Provenance {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareExplainKeys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k, explainValue(spec, generic, k), spec.Provenance[k])
	}
	return tw.Flush()
}

// compareExplainKeys orders keys the way a reader scans a spec.
func compareExplainKeys(a, b string) int {
	rank := func(k string) int {
		for i, p := range []string{"image", "etc[", "vars.", "health[", "update.", "policy."} {
			if strings.HasPrefix(k, p) {
				return i
			}
		}
		return 99
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	return strings.Compare(a, b)
}

func explainValue(spec *HostSpec, generic map[string]any, key string) string {
	switch {
	case key == "image":
		if spec.Image.Digest != "" && !strings.Contains(spec.Image.Ref, "@") {
			return spec.Image.Ref + " @ " + spec.Image.Digest
		}
		return spec.Image.Ref
	case strings.HasPrefix(key, "etc["):
		p := strings.TrimSuffix(strings.TrimPrefix(key, "etc["), "]")
		for _, f := range spec.Etc {
			if f.Path == p {
				if f.Absent {
					return "absent (removed)"
				}
				return fmt.Sprintf("%s %s:%s sha256:%.12s", f.Mode, f.Owner, f.Group, f.SHA256)
			}
		}
		return "(dropped)"
	case strings.HasPrefix(key, "health["):
		rest := strings.TrimPrefix(key, "health[")
		name, field, _ := strings.Cut(rest, "]")
		field = strings.TrimPrefix(field, ".")
		for _, c := range spec.Health {
			if c.Name != name {
				continue
			}
			if field == "" {
				return checkSummary(c)
			}
			var m map[string]any
			b, _ := json.Marshal(c)
			_ = json.Unmarshal(b, &m)
			return compact(m[field])
		}
		return "(disabled)"
	}
	var cur any = generic
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "?"
		}
		cur = m[part]
	}
	return compact(cur)
}

func checkSummary(c HealthCheck) string {
	switch {
	case c.Systemd != "":
		return "systemd " + c.Systemd
	case c.HTTP != "":
		return "http " + c.HTTP
	case c.TCP != "":
		return "tcp " + c.TCP
	case len(c.Command) > 0:
		return "command " + strings.Join(c.Command, " ")
	}
	return "?"
}

func compact(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func formatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
