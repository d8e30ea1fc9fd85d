package hostspec

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// healthEntry is one health check with the place that set each key. It is
// what one layer writes (a new check in the lowest layer that names it, or
// changes to an inherited one: only the keys it sets), and the same shape
// is the check merged over the layers (apply), until finalizeCheck turns it
// into the HealthCheck a host gets.
type healthEntry struct {
	name string
	// keys are the provenance keys, shared by every layer and host that
	// names the check (set when a layer is prepared).
	keys *healthKeys
	// src is where the check's type was last set (where it is defined),
	// or its first mention when no layer sets a type.
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

// forget deletes the check's keys from prov.
func (k *healthKeys) forget(prov map[string]Source) {
	for _, key := range [...]string{k.check, k.systemd, k.http, k.tcp, k.command, k.expect, k.timeout, k.interval, k.retries, k.required} {
		delete(prov, key)
	}
}

func newHealthKeys(name string) *healthKeys {
	base := "health[" + name + "]"
	return &healthKeys{check: base, systemd: base + ".systemd", http: base + ".http", tcp: base + ".tcp",
		command: base + ".command", expect: base + ".expect", timeout: base + ".timeout",
		interval: base + ".interval", retries: base + ".retries", required: base + ".required"}
}

// healthObject is one check of `health:`. Its type (systemd, http, tcp,
// command) merges as one: a layer that sets a type replaces the whole type.
var healthObject = objectOf(
	field[healthEntry]{key: "name", parse: func(d *decoder, v *yaml.Node, f string, h *healthEntry) {
		if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
			h.name = s
		}
	}},
	alone(optKey("systemd", func(h *healthEntry) *opt[string] { return &h.systemd }, checkedText(checkUnit))),
	alone(optKey("http", func(h *healthEntry) *opt[string] { return &h.http }, checkedText(checkCheckURL))),
	optKey("expect", func(h *healthEntry) *opt[string] { return &h.expect }, (*decoder).scalarText),
	alone(optKey("tcp", func(h *healthEntry) *opt[string] { return &h.tcp }, checkedText(checkTCPAddress))),
	alone(optKey("command", func(h *healthEntry) *opt[[]string] { return &h.command }, (*decoder).command)),
	optKey("timeout", func(h *healthEntry) *opt[Duration] { return &h.timeout }, durationOf(MinCheckTimeout)),
	optKey("interval", func(h *healthEntry) *opt[Duration] { return &h.interval }, durationOf(MinCheckInterval)),
	optKey("retries", func(h *healthEntry) *opt[int] { return &h.retries }, func(d *decoder, v *yaml.Node, f string) (int, bool) {
		return d.integer(v, f, 0, 1000)
	}),
	optKey("required", func(h *healthEntry) *opt[bool] { return &h.required }, (*decoder).boolean),
	optKey("disabled", func(h *healthEntry) *opt[bool] { return &h.disabled }, (*decoder).boolean),
)

// checkCheckURL validates the URL of an http check.
func checkCheckURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "invalid URL " + strconv.Quote(s) + ": want http://host[:port]/path or https://…"
	}
	return ""
}

// checkTCPAddress validates the host:port of a tcp check.
func checkTCPAddress(s string) string {
	host, port, err := net.SplitHostPort(s)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return "invalid address " + strconv.Quote(s) + ": want host:port, like 127.0.0.1:5432"
	}
	return ""
}

// command decodes the argv of a command check.
func (d *decoder) command(v *yaml.Node, f string) ([]string, bool) {
	argv, ok := d.stringList(v, f)
	if !ok {
		return nil, false
	}
	if len(argv) == 0 {
		d.failf(v, f, "must not be empty: give the program and its arguments")
		return nil, false
	}
	if !strings.HasPrefix(argv[0], "/") {
		d.failf(v, f, "the program %q must be an absolute path: it runs without a shell or PATH lookup", argv[0])
		return nil, false
	}
	return argv, true
}

// healthEntry decodes one item of `health:`. Only the Fleet, below which
// no layer can supply a missing type, must give every check a type.
func (d *decoder) healthEntry(n *yaml.Node, field string) *healthEntry {
	h := &healthEntry{src: d.src(n)}
	errsBefore := len(d.errs)
	if !healthObject.decode(d, n, field, h) || len(d.errs) > errsBefore {
		return nil
	}
	if h.name == "" {
		d.failf(n, join(field, "name"), "missing: every health check needs a name")
		return nil
	}
	lowest := d.kind == KindFleet
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

func (h *healthEntry) types() []string {
	var out []string
	for _, t := range []struct {
		name string
		set  bool
	}{{"systemd", h.systemd.set}, {"http", h.http.set}, {"tcp", h.tcp.set}, {"command", h.command.set}} {
		if t.set {
			out = append(out, t.name)
		}
	}
	return out
}

// apply lays one layer's check over the check merged so far (a zero check
// when it is new), key by key.
func (h *healthEntry) apply(p *healthEntry, exists bool) {
	if !exists {
		h.name, h.src, h.keys = p.name, p.src, p.keys
	}
	if p.systemd.set || p.http.set || p.tcp.set || p.command.set {
		// A new type replaces the old one; expect only survives while the
		// check stays an http check.
		h.systemd, h.http, h.tcp, h.command = p.systemd, p.http, p.tcp, p.command
		if !p.http.set {
			h.expect = opt[string]{}
		}
		h.src = p.src
	}
	healthObject.merge(h, p)
}

// finalizeCheck turns a merged check into its resolved form, recording
// provenance; disabled checks are dropped.
func finalizeCheck(h *healthEntry, prov map[string]Source, fail func(Source, string, string, ...any)) (HealthCheck, bool) {
	if h.disabled.set && h.disabled.v {
		return HealthCheck{}, false
	}
	k := h.keys
	hc := HealthCheck{
		Name:     h.name,
		Systemd:  h.systemd.v,
		HTTP:     h.http.v,
		TCP:      h.tcp.v,
		Command:  slices.Clone(h.command.v),
		Expect:   h.expect.v,
		Timeout:  Duration(DefaultCheckTimeout),
		Interval: Duration(DefaultCheckInterval),
		Retries:  DefaultCheckRetries,
		Required: DefaultCheckRequired,
		Source:   h.src,
	}
	var typ string
	switch {
	case h.systemd.set:
		typ, prov[k.systemd] = "systemd", h.systemd.src
	case h.http.set:
		typ, prov[k.http] = "http", h.http.src
	case h.tcp.set:
		typ, prov[k.tcp] = "tcp", h.tcp.src
	case h.command.set:
		typ, prov[k.command] = "command", h.command.src
	default:
		fail(h.src, k.check, "health check %q has no type in any layer: set one of systemd, http, tcp, command", hc.Name)
		return HealthCheck{}, false
	}
	if h.expect.set {
		if typ != "http" {
			fail(h.expect.src, k.expect, "expect only applies to http checks; %q is a %s check", hc.Name, typ)
			return HealthCheck{}, false
		}
		prov[k.expect] = h.expect.src
	}
	prov[k.check] = h.src
	provOpt(prov, k.timeout, &hc.Timeout, h.timeout)
	provOpt(prov, k.interval, &hc.Interval, h.interval)
	provOpt(prov, k.retries, &hc.Retries, h.retries)
	provOpt(prov, k.required, &hc.Required, h.required)
	return hc, true
}
