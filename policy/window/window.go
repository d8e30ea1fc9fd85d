// Package window evaluates weekly maintenance windows (update.windows in the
// fleet repository) in IANA time zones.
//
// A window is "on these weekdays, at this local wall-clock time, for this
// long". The rules that matter for a fleet are precise:
//
//   - Start is local wall-clock time in the window's zone; Duration is real
//     elapsed time (3h is three hours on a stopwatch, even across a DST
//     change), so a window never silently grows or shrinks.
//   - A start that does not exist locally (spring forward: 02:30 on a day
//     whose clocks jump from 02:00 to 03:00) opens at the first instant after
//     the gap (03:00), the way cron and systemd calendar timers catch up; it
//     still lasts its full Duration from there. A window is never skipped.
//   - A start that exists twice (fall back: 01:30 on a day whose clocks go
//     from 02:00 back to 01:00) opens once, at its first occurrence.
//   - Windows may span midnight and the end of the week (Sunday 23:00 for 3h
//     is open on Monday at 01:00), and overlapping or touching windows form
//     one continuous open period.
//
// Time zones come from Go's embedded copy of the IANA database (time/tzdata)
// when the host has no /usr/share/zoneinfo, so a minimal image still
// evaluates windows correctly.
package window

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // hosts without zoneinfo must still know every zone

	"github.com/bootsync/bootsync/hostspec"
)

// MaxDuration is the longest allowed window: one week. A longer window
// would overlap its own next occurrence.
const MaxDuration = 7 * 24 * time.Hour

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// Schedule is a validated set of weekly maintenance windows. Build one with
// Parse; the zero value is never open. A Schedule is immutable and safe for
// concurrent use.
type Schedule struct {
	windows []window
}

type window struct {
	days     [7]bool // indexed by time.Weekday
	hour     int
	minute   int
	duration time.Duration
	loc      *time.Location
	spec     hostspec.Window
}

// Parse validates windows and returns their schedule. Day names are mon..sun
// or monday..sunday in any case; Start is "HH:MM" (24-hour); Duration is
// more than zero and at most 7 days; Timezone is an IANA name such as
// "Asia/Seoul" (empty means UTC). Every problem is reported, each naming the
// window (1-based) it is in.
func Parse(ws []hostspec.Window) (*Schedule, error) {
	if len(ws) == 0 {
		// A window strategy without windows would hold reboots forever,
		// silently: make it a configuration error instead.
		return nil, errors.New("maintenance windows: none configured (a window reboot policy needs at least one window)")
	}
	var errs []error
	s := &Schedule{windows: make([]window, 0, len(ws))}
	for i, spec := range ws {
		w, err := parseWindow(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("maintenance window %d: %w", i+1, err))
			continue
		}
		s.windows = append(s.windows, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func parseWindow(spec hostspec.Window) (window, error) {
	w := window{spec: spec}
	var errs []error
	if len(spec.Days) == 0 {
		errs = append(errs, errors.New("days: at least one day is required (mon..sun)"))
	}
	for _, d := range spec.Days {
		wd, ok := dayNames[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			errs = append(errs, fmt.Errorf("days: %q is not a day of the week (use mon, tue, wed, thu, fri, sat, sun or the full names)", d))
			continue
		}
		w.days[wd] = true
	}
	// "15:04" accepts "2:00" and "02:00" and rejects "24:00" and "2:0".
	st, err := time.Parse("15:04", spec.Start)
	if err != nil {
		errs = append(errs, fmt.Errorf("start: %q is not a 24-hour time like \"02:30\"", spec.Start))
	} else {
		w.hour, w.minute = st.Hour(), st.Minute()
	}
	w.duration = time.Duration(spec.Duration)
	switch {
	case w.duration <= 0:
		errs = append(errs, fmt.Errorf("duration: %s must be longer than zero", w.duration))
	case w.duration > MaxDuration:
		errs = append(errs, fmt.Errorf("duration: %s is longer than one week (168h)", w.duration))
	}
	w.loc, err = loadZone(spec.Timezone)
	if err != nil {
		errs = append(errs, err)
	}
	return w, errors.Join(errs...)
}

func loadZone(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local", "localtime":
		// The fleet repo is evaluated in CI as well as on hosts; a window
		// that depends on the evaluating machine's zone would differ
		// between `bootsync plan` in CI and the host itself.
		return nil, fmt.Errorf("timezone: %q depends on the machine's configuration; name an IANA zone such as \"Europe/Berlin\"", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone: %q is not an IANA time zone name such as \"Asia/Seoul\": %w", name, err)
	}
	return loc, nil
}

// Open reports whether t falls inside a maintenance window.
func (s *Schedule) Open(t time.Time) bool {
	start, end := s.Next(t)
	return !start.After(t) && end.After(t)
}

// Next returns the open period that contains t, or else the next one to
// come: start ≤ t < end when a window is open at t, t < start otherwise.
// Overlapping or touching windows form one period. start and end are
// expressed in the time zone of the window that opens the period, so they
// print as local time.
//
// The schedule is evaluated from about a week before t to two weeks after
// it, so a schedule that is open all the time reports a period at least a
// week long rather than an unbounded one.
func (s *Schedule) Next(t time.Time) (start, end time.Time) {
	periods := s.periods(t)
	for _, p := range periods {
		if p.end.After(t) {
			return p.start, p.end
		}
	}
	// Only for a Schedule not built by Parse (every parsed window has a day,
	// so something opens within a week): never open.
	return time.Time{}, time.Time{}
}

type period struct{ start, end time.Time }

// periods lists the occurrences of every window whose local start date lies
// from 8 days before to 15 days after t, merged into open periods and
// sorted. Any occurrence containing t starts at most 7 days (MaxDuration)
// before it, and the next one starts at most 7 days after it, so both are
// always in the list.
func (s *Schedule) periods(t time.Time) []period {
	var occ []period
	for _, w := range s.windows {
		local := t.In(w.loc)
		y, m, d := local.Date()
		for offset := -8; offset <= 15; offset++ {
			// Calendar arithmetic in UTC: the weekday of a date does not
			// depend on the zone, and noon avoids any DST edge.
			day := time.Date(y, m, d+offset, 12, 0, 0, 0, time.UTC)
			if !w.days[day.Weekday()] {
				continue
			}
			start := resolveLocal(day.Year(), day.Month(), day.Day(), w.hour, w.minute, w.loc)
			occ = append(occ, period{start: start, end: start.Add(w.duration)})
		}
	}
	sort.Slice(occ, func(i, j int) bool { return occ[i].start.Before(occ[j].start) })
	merged := occ[:0:0]
	for _, p := range occ {
		if n := len(merged); n > 0 && !p.start.After(merged[n-1].end) {
			if p.end.After(merged[n-1].end) {
				merged[n-1].end = p.end.In(merged[n-1].start.Location())
			}
			continue
		}
		merged = append(merged, period{start: p.start, end: p.end.In(p.start.Location())})
	}
	return merged
}

// resolveLocal returns the instant at which the wall clock in loc first
// shows the given date and time, or, when DST skips that time, the first
// instant after the skipped interval. time.Date leaves both cases
// unspecified (and in practice differs between zones), so the candidates are
// computed explicitly from the offsets in effect around that date.
func resolveLocal(year int, month time.Month, day, hour, minute int, loc *time.Location) time.Time {
	wall := time.Date(year, month, day, hour, minute, 0, 0, time.UTC)
	guess := time.Date(year, month, day, hour, minute, 0, 0, loc)

	// Offsets in effect just before, at and after the guess: a wall time
	// that exists is wall - offset for one of them.
	offsets := map[int]bool{}
	addOffset := func(at time.Time) {
		_, off := at.Zone()
		offsets[off] = true
	}
	addOffset(guess)
	zoneStart, zoneEnd := guess.ZoneBounds()
	if !zoneStart.IsZero() {
		addOffset(zoneStart.Add(-time.Second))
	}
	if !zoneEnd.IsZero() {
		addOffset(zoneEnd)
	}
	addOffset(guess.Add(-48 * time.Hour))
	addOffset(guess.Add(48 * time.Hour))

	var best, afterGap time.Time
	for off := range offsets {
		c := wall.Add(-time.Duration(off) * time.Second).In(loc)
		cw := time.Date(c.Year(), c.Month(), c.Day(), c.Hour(), c.Minute(), c.Second(), c.Nanosecond(), time.UTC)
		switch {
		case cw.Equal(wall):
			if best.IsZero() || c.Before(best) {
				best = c
			}
		case cw.After(wall):
			// Read with an offset from before a forward jump, the wall time
			// lands after the gap; the earliest such candidate is in the
			// zone that begins right at the gap's end.
			if afterGap.IsZero() || c.Before(afterGap) {
				afterGap = c
			}
		}
	}
	if !best.IsZero() {
		return best
	}
	if !afterGap.IsZero() {
		if begin, _ := afterGap.ZoneBounds(); !begin.IsZero() {
			return begin.In(loc)
		}
	}
	return guess
}

// String renders the schedule in the fleet repo's terms, for logs and
// status: "sat,sun 02:00 for 3h0m0s (Asia/Seoul)".
func (s *Schedule) String() string {
	parts := make([]string, 0, len(s.windows))
	for _, w := range s.windows {
		var days []string
		for wd := time.Sunday; wd <= time.Saturday; wd++ {
			if w.days[wd] {
				days = append(days, strings.ToLower(wd.String()[:3]))
			}
		}
		parts = append(parts, fmt.Sprintf("%s %02d:%02d for %s (%s)", strings.Join(days, ","), w.hour, w.minute, w.duration, w.loc))
	}
	return strings.Join(parts, "; ")
}
