package hostspec

import (
	"net/url"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

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

var updateObject = objectOf(
	optKey("reboot", func(u *updatePatch) *opt[RebootStrategy] { return &u.reboot }, (*decoder).rebootStrategy),
	optKey("windows", func(u *updatePatch) *opt[[]Window] { return &u.windows }, (*decoder).windows),
	field[updatePatch]{
		key: "fleetlock",
		parse: func(d *decoder, v *yaml.Node, f string, u *updatePatch) {
			u.fleetlock.put(struct{}{}, d.src(v))
			fleetlockObject.decode(d, v, f, u)
		},
		merge: func(lo, hi *updatePatch) {
			setIf(&lo.fleetlock, hi.fleetlock)
			fleetlockObject.merge(lo, hi)
		},
	},
	optKey("paused", func(u *updatePatch) *opt[bool] { return &u.paused }, (*decoder).boolean),
	optKey("grace", func(u *updatePatch) *opt[Duration] { return &u.grace }, (*decoder).duration),
	optKey("softReboot", func(u *updatePatch) *opt[bool] { return &u.softReboot }, (*decoder).boolean),
	optKey("deferRebootWhileUsers", func(u *updatePatch) *opt[bool] { return &u.deferRebootWhileUsers }, (*decoder).boolean),
	optKey("maxDeferral", func(u *updatePatch) *opt[Duration] { return &u.maxDeferral }, (*decoder).duration),
)

var fleetlockObject = objectOf(
	optKey("url", func(u *updatePatch) *opt[string] { return &u.fleetlockURL }, checkedText(checkFleetLockURL)),
	optKey("group", func(u *updatePatch) *opt[string] { return &u.fleetlockGroup }, checkedText(anyText)),
)

func (d *decoder) rebootStrategy(v *yaml.Node, f string) (RebootStrategy, bool) {
	s, ok := d.text(v, f)
	if !ok {
		return "", false
	}
	switch r := RebootStrategy(s); r {
	case RebootImmediate, RebootWindow, RebootFleetLock, RebootWindowFleetLock, RebootManual:
		return r, true
	}
	d.failf(v, f, "invalid reboot strategy %q: want immediate, window, fleetlock, window+fleetlock or manual", s)
	return "", false
}

// windows decodes `windows:`; one bad window makes the list unusable.
func (d *decoder) windows(v *yaml.Node, f string) ([]Window, bool) {
	var windows []Window
	okAll := true
	ok := d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
		w, ok := d.window(item, f)
		okAll = okAll && ok
		windows = append(windows, w)
	})
	return windows, ok && okAll
}

func checkFleetLockURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "invalid URL " + strconv.Quote(s) + ": want https://host[:port][/path]"
	}
	return ""
}

// setsNothing reports whether the patch sets no key, as most hosts' own
// layers do.
func (u *updatePatch) setsNothing() bool {
	return !(u.reboot.set || u.windows.set || u.fleetlock.set || u.fleetlockURL.set || u.fleetlockGroup.set ||
		u.paused.set || u.grace.set || u.softReboot.set || u.deferRebootWhileUsers.set || u.maxDeferral.set)
}

// apply lays hi over u key by key.
func (u *updatePatch) apply(hi *updatePatch) { updateObject.merge(u, hi) }

// policy turns the merged update settings into a host's UpdatePolicy,
// with defaults and provenance, and reports a reboot strategy that lacks
// what it needs.
func (u *updatePatch) policy(prov map[string]Source, fail func(Source, string, string, ...any)) UpdatePolicy {
	up := UpdatePolicy{
		Reboot:      RebootImmediate,
		Grace:       Duration(DefaultGrace),
		MaxDeferral: Duration(DefaultMaxDeferral),
	}
	provOpt(prov, "update.reboot", &up.Reboot, u.reboot)
	provOpt(prov, "update.paused", &up.Paused, u.paused)
	provOpt(prov, "update.grace", &up.Grace, u.grace)
	provOpt(prov, "update.softReboot", &up.SoftReboot, u.softReboot)
	provOpt(prov, "update.deferRebootWhileUsers", &up.DeferRebootWhileUsers, u.deferRebootWhileUsers)
	provOpt(prov, "update.maxDeferral", &up.MaxDeferral, u.maxDeferral)
	if u.windows.set {
		up.Windows = cloneWindows(u.windows.v)
		prov["update.windows"] = u.windows.src
	}
	if u.fleetlock.set {
		up.FleetLock = &FleetLock{URL: u.fleetlockURL.v, Group: "default"}
		prov["update.fleetlock"] = u.fleetlock.src
		provOpt(prov, "update.fleetlock.url", &up.FleetLock.URL, u.fleetlockURL)
		provOpt(prov, "update.fleetlock.group", &up.FleetLock.Group, u.fleetlockGroup)
	}
	switch up.Reboot {
	case RebootWindow, RebootWindowFleetLock:
		if len(up.Windows) == 0 {
			fail(u.reboot.src, "update.reboot", "reboot: %s needs update.windows, and no layer sets any", up.Reboot)
		}
	}
	switch up.Reboot {
	case RebootFleetLock, RebootWindowFleetLock:
		if up.FleetLock == nil || up.FleetLock.URL == "" {
			fail(u.reboot.src, "update.reboot", "reboot: %s needs update.fleetlock.url, and no layer sets it", up.Reboot)
		}
	}
	return up
}

func cloneWindows(ws []Window) []Window {
	out := make([]Window, len(ws))
	for i, w := range ws {
		w.Days = slices.Clone(w.Days)
		out[i] = w
	}
	return out
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// windowDecoding is a maintenance window being decoded.
type windowDecoding struct {
	w                     Window
	sawStart, sawDuration bool
}

var windowObject = objectOf(
	field[windowDecoding]{key: "days", parse: func(d *decoder, v *yaml.Node, f string, wd *windowDecoding) { d.days(v, f, &wd.w) }},
	field[windowDecoding]{key: "start", parse: func(d *decoder, v *yaml.Node, f string, wd *windowDecoding) {
		wd.sawStart = true
		s, ok := d.text(v, f)
		if ok && !validClock(s) {
			d.failf(v, f, "invalid start time %q: want HH:MM on a 24-hour clock, like \"02:00\"", s)
			return
		}
		wd.w.Start = s
	}},
	field[windowDecoding]{key: "duration", parse: func(d *decoder, v *yaml.Node, f string, wd *windowDecoding) {
		wd.sawDuration = true
		x, ok := d.duration(v, f)
		if ok && time.Duration(x) > 7*24*time.Hour {
			d.failf(v, f, "duration %s is longer than a week", x)
			return
		}
		wd.w.Duration = x
	}},
	field[windowDecoding]{key: "timezone", parse: func(d *decoder, v *yaml.Node, f string, wd *windowDecoding) {
		if s, ok := checkedText(checkTimezone)(d, v, f); ok {
			wd.w.Timezone = s
		}
	}},
)

// window decodes one maintenance window. Days are normalized to lower-case
// three-letter names, all seven when omitted; the time zone defaults to UTC.
func (d *decoder) window(n *yaml.Node, field string) (Window, bool) {
	wd := windowDecoding{w: Window{Timezone: "UTC"}}
	errsBefore := len(d.errs)
	if !windowObject.decode(d, n, field, &wd) {
		return wd.w, false
	}
	if !wd.sawStart {
		d.failf(n, join(field, "start"), "missing: when the window opens, like \"02:00\"")
	}
	if !wd.sawDuration {
		d.failf(n, join(field, "duration"), "missing: how long the window stays open, like 3h")
	}
	w := wd.w
	if w.Days == nil {
		w.Days = append([]string(nil), weekdays...)
	} else {
		// Keep the week's order so equal windows compare equal.
		var sorted []string
		for _, day := range weekdays {
			if slices.Contains(w.Days, day) {
				sorted = append(sorted, day)
			}
		}
		w.Days = sorted
	}
	return w, len(d.errs) == errsBefore
}

// days decodes a window's days: each once, by short or full name.
func (d *decoder) days(v *yaml.Node, f string, w *Window) {
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
		if slices.Contains(w.Days, norm) {
			d.failf(v.Content[i], index(f, i), "day %q is listed twice", day)
			continue
		}
		w.Days = append(w.Days, norm)
	}
}
