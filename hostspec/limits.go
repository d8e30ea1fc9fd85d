package hostspec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// Limits bound what one revision of a fleet repository may cost to load
// and render, so that a careless or hostile commit fails with a clear error
// instead of exhausting the memory or time of every host's agent and of the
// CI runner that diffs it. fleet.yaml may set them (top-level `limits:`)
// within the ceilings of the machine that loads it (WithLimitCeilings: the
// host's configuration, or the command line).
//
// Template steps and memory are counted, not timed, so a template that
// passes `bootsync validate` in CI renders the same on every host.
type Limits struct {
	// FileSize bounds a file under files/ (templates included) and the
	// output of one rendered template.
	FileSize int64 `json:"fileSize" yaml:"fileSize"`
	// DocumentSize bounds a YAML document: fleet.yaml, a group or host
	// file, bootsync.lock. Decoded YAML takes ~60–120 times its size in
	// memory.
	DocumentSize int64 `json:"documentSize" yaml:"documentSize"`
	// RepoSize bounds every file read from the repository together.
	RepoSize int64 `json:"repoSize" yaml:"repoSize"`
	// TemplateSteps bounds the work of one render: each action, each
	// iteration of a range (weighted by the size of its body) and each
	// {{template}} call.
	TemplateSteps int64 `json:"templateSteps" yaml:"templateSteps"`
	// TemplateMemory bounds the bytes template functions (printf, print,
	// println, html, js, urlquery) may produce during one render.
	TemplateMemory int64 `json:"templateMemory" yaml:"templateMemory"`
}

// DefaultLimits apply when fleet.yaml sets none. Each is far above what an
// honest fleet needs (docs/limits.md has the measurements).
var DefaultLimits = Limits{
	FileSize:       4 << 20,
	DocumentSize:   1 << 20,
	RepoSize:       128 << 20,
	TemplateSteps:  1_000_000,
	TemplateMemory: 64 << 20,
}

// DefaultCeilings are the most fleet.yaml may ask for on a machine that
// sets no ceilings of its own.
var DefaultCeilings = Limits{
	FileSize:       64 << 20,
	DocumentSize:   8 << 20,
	RepoSize:       1 << 30,
	TemplateSteps:  10_000_000,
	TemplateMemory: 256 << 20,
}

// WithLimitCeilings sets the most fleet.yaml's `limits:` may ask for on
// this machine (from the host configuration or the command line); zero
// fields keep DefaultCeilings.
func WithLimitCeilings(c Limits) LoadOption {
	return func(cfg *loadConfig) error {
		for _, n := range limitNames {
			if *c.field(n) < 0 {
				return fmt.Errorf("WithLimitCeilings: %s is negative", n)
			}
		}
		cfg.ceilings = c
		return nil
	}
}

// limitNames lists the keys of `limits:`, in documentation order.
var limitNames = []string{"fileSize", "documentSize", "repoSize", "templateSteps", "templateMemory"}

func (l *Limits) field(name string) *int64 {
	switch name {
	case "fileSize":
		return &l.FileSize
	case "documentSize":
		return &l.DocumentSize
	case "repoSize":
		return &l.RepoSize
	case "templateSteps":
		return &l.TemplateSteps
	case "templateMemory":
		return &l.TemplateMemory
	}
	return nil
}

// isSize says whether a limit counts bytes (and is shown as such).
func isSize(name string) bool { return name != "templateSteps" }

// WithDefaults fills zero fields from def.
func (l Limits) WithDefaults(def Limits) Limits {
	for _, n := range limitNames {
		if p := l.field(n); *p <= 0 {
			*p = *def.field(n)
		}
	}
	return l
}

// SetLimit sets one limit by its fleet.yaml name from text such as
// "64Mi", "1000000" or "2GiB" (for host configuration and flags).
func (l *Limits) SetLimit(name, text string) error {
	p := l.field(name)
	if p == nil {
		return fmt.Errorf("unknown limit %q (known: %s)", name, strings.Join(limitNames, ", "))
	}
	v, err := ParseLimit(name, text)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParseLimit parses a limit's value: a positive integer, for sizes
// optionally with a binary unit (Ki, Mi, Gi, KiB, MiB, GiB).
func ParseLimit(name, text string) (int64, error) {
	s := strings.TrimSpace(text)
	mult := int64(1)
	if isSize(name) {
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
			if rest, ok := strings.CutSuffix(s, u.suffix); ok {
				s, mult = strings.TrimSpace(rest), u.mult
				break
			}
		}
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		unit := ""
		if isSize(name) {
			unit = " (bytes, or with a unit: Ki, Mi, Gi)"
		}
		return 0, fmt.Errorf("limit %s: %q is not a positive integer%s", name, text, unit)
	}
	return n * mult, nil
}

// limitsDoc is fleet.yaml's `limits:` as written.
type limitsDoc struct {
	set Limits // zero where not set
	src map[string]Source
}

func (d *decoder) limits(n *yaml.Node, field string) limitsDoc {
	doc := limitsDoc{src: map[string]Source{}}
	limitsObject.decode(d, n, field, &doc)
	return doc
}

// limitsObject has one key per limit, each parsed by ParseLimit.
var limitsObject = func() *object[limitsDoc] {
	fields := make([]field[limitsDoc], len(limitNames))
	for i, key := range limitNames {
		fields[i] = field[limitsDoc]{key: key, parse: func(d *decoder, v *yaml.Node, f string, doc *limitsDoc) {
			s, ok := d.text(v, f)
			if !ok {
				return
			}
			val, err := ParseLimit(key, s)
			if err != nil {
				d.failf(v, f, "%s", strings.TrimPrefix(err.Error(), "limit "+key+": "))
				return
			}
			*doc.set.field(key) = val
			doc.src[key] = d.src(v)
		}}
	}
	return objectOf(fields...)
}()

// effectiveLimits are fleet.yaml's limits (or the defaults) capped by the
// machine's ceilings.
type effectiveLimits struct {
	Limits
	ceilings Limits
	asked    Limits // what fleet.yaml asked for (zero: not set)
}

func newEffectiveLimits(doc limitsDoc, ceilings Limits) effectiveLimits {
	e := effectiveLimits{Limits: doc.set.WithDefaults(DefaultLimits), ceilings: ceilings, asked: doc.set}
	for _, n := range limitNames {
		if p, c := e.field(n), *ceilings.field(n); *p > c {
			*p = c
		}
	}
	return e
}

// explain says where a limit comes from, for messages: "limits.fileSize,
// 4 MiB" plus whether a ceiling lowered it.
func (e *effectiveLimits) explain(name string) string {
	v := *e.field(name)
	s := "limits." + name + " = " + formatLimit(name, v)
	if asked := *e.asked.field(name); asked > v {
		s += fmt.Sprintf(" (fleet.yaml asks for %s; this machine's ceiling is %s)", formatLimit(name, asked), formatLimit(name, v))
	}
	return s
}

func formatLimit(name string, v int64) string {
	if isSize(name) {
		return boundedread.FormatSize(v)
	}
	return strconv.FormatInt(v, 10)
}

// LimitExceeded returns the name of the limit (fileSize, templateSteps, …)
// that a load or resolve error reports as exceeded, or "" when err is not
// about a limit. The agent reports such failures as reason render-budget.
func LimitExceeded(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Limit != "" {
		return e.Limit
	}
	var list ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			if e.Limit != "" {
				return e.Limit
			}
		}
	}
	return ""
}
