package window

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

func mustParse(t *testing.T, ws ...hostspec.Window) *Schedule {
	t.Helper()
	s, err := Parse(ws)
	if err != nil {
		t.Fatalf("Parse(%+v): %v", ws, err)
	}
	return s
}

func hours(h float64) hostspec.Duration {
	return hostspec.Duration(time.Duration(h * float64(time.Hour)))
}

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

// expectPeriod checks Next(at) and that Open agrees at and around the edges.
func expectPeriod(t *testing.T, s *Schedule, at, wantStart, wantEnd time.Time) {
	t.Helper()
	start, end := s.Next(at)
	if !start.Equal(wantStart) || !end.Equal(wantEnd) {
		t.Fatalf("Next(%s) = [%s, %s), want [%s, %s)", at.UTC(), start.UTC(), end.UTC(), wantStart.UTC(), wantEnd.UTC())
	}
	wantOpen := !at.Before(wantStart) && at.Before(wantEnd)
	if got := s.Open(at); got != wantOpen {
		t.Fatalf("Open(%s) = %v, want %v", at.UTC(), got, wantOpen)
	}
	if !s.Open(wantStart) || !s.Open(wantEnd.Add(-time.Nanosecond)) {
		t.Fatalf("window [%s, %s) is not open at its own edges", wantStart.UTC(), wantEnd.UTC())
	}
	if s.Open(wantStart.Add(-time.Nanosecond)) || s.Open(wantEnd) {
		t.Fatalf("window [%s, %s) is open outside its edges", wantStart.UTC(), wantEnd.UTC())
	}
}

func TestParseAcceptsDayNamesInAnyFormAndDefaultsToUTC(t *testing.T) {
	s := mustParse(t, hostspec.Window{Days: []string{"Saturday", "SUN", " mon "}, Start: "2:05", Duration: hours(1)})
	if got, want := s.String(), "sun,mon,sat 02:05 for 1h0m0s (UTC)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	// Saturday 2026-07-18 02:05 UTC.
	expectPeriod(t, s, utc(2026, 7, 18, 1, 0), utc(2026, 7, 18, 2, 5), utc(2026, 7, 18, 3, 5))
}

func TestParseRejectsInvalidWindowsNamingEachProblem(t *testing.T) {
	good := hostspec.Window{Days: []string{"sat"}, Start: "02:00", Duration: hours(3), Timezone: "Asia/Seoul"}
	cases := []struct {
		name string
		w    hostspec.Window
		want string
	}{
		{"unknown day", hostspec.Window{Days: []string{"sat", "funday"}, Start: "02:00", Duration: hours(1)}, `"funday" is not a day of the week`},
		{"no days", hostspec.Window{Start: "02:00", Duration: hours(1)}, "at least one day is required"},
		{"hour 24", hostspec.Window{Days: []string{"mon"}, Start: "24:00", Duration: hours(1)}, `start: "24:00" is not a 24-hour time`},
		{"one-digit minute", hostspec.Window{Days: []string{"mon"}, Start: "2:0", Duration: hours(1)}, `start: "2:0"`},
		{"words", hostspec.Window{Days: []string{"mon"}, Start: "noon", Duration: hours(1)}, `start: "noon"`},
		{"empty start", hostspec.Window{Days: []string{"mon"}, Duration: hours(1)}, `start: ""`},
		{"zero duration", hostspec.Window{Days: []string{"mon"}, Start: "02:00"}, "must be longer than zero"},
		{"negative duration", hostspec.Window{Days: []string{"mon"}, Start: "02:00", Duration: hours(-1)}, "must be longer than zero"},
		{"over a week", hostspec.Window{Days: []string{"mon"}, Start: "02:00", Duration: hours(7*24 + 1)}, "longer than one week"},
		{"unknown zone", hostspec.Window{Days: []string{"mon"}, Start: "02:00", Duration: hours(1), Timezone: "Mars/Olympus_Mons"}, `"Mars/Olympus_Mons" is not an IANA time zone`},
		{"machine local zone", hostspec.Window{Days: []string{"mon"}, Start: "02:00", Duration: hours(1), Timezone: "Local"}, "depends on the machine's configuration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]hostspec.Window{good, tc.w})
			if err == nil {
				t.Fatalf("Parse accepted %+v", tc.w)
			}
			if !strings.Contains(err.Error(), "maintenance window 2: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name window 2 and %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "maintenance window 1") {
				t.Fatalf("error %q blames the valid window 1", err)
			}
		})
	}

	_, err := Parse([]hostspec.Window{{Days: []string{"xyz"}, Start: "25:00", Timezone: "Nowhere/City"}})
	for _, want := range []string{`"xyz"`, `"25:00"`, "longer than zero", `"Nowhere/City"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s: every problem must be reported at once", err, want)
		}
	}
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "none configured") {
		t.Errorf("Parse(nil) = %v, want an error saying no windows are configured", err)
	}
	if _, err := Parse([]hostspec.Window{{Days: []string{"mon"}, Start: "00:00", Duration: hostspec.Duration(MaxDuration), Timezone: "UTC"}}); err != nil {
		t.Errorf("a window of exactly one week must be allowed: %v", err)
	}
}

// A closed window holds the reboot and opens exactly at the local start
// time: the "clock" is the instant passed to Open/Next.
func TestClosedWindowOpensAtLocalStartTime(t *testing.T) {
	seoul, _ := time.LoadLocation("Asia/Seoul")
	s := mustParse(t, hostspec.Window{Days: []string{"sat", "sun"}, Start: "02:00", Duration: hours(3), Timezone: "Asia/Seoul"})

	// Friday 2026-07-17 23:00 in Seoul (14:00 UTC): closed; opens Saturday 02:00 KST.
	now := time.Date(2026, 7, 17, 23, 0, 0, 0, seoul)
	start, end := s.Next(now)
	if s.Open(now) {
		t.Fatalf("window open on Friday 23:00 KST")
	}
	if got := start.Format("Mon 2006-01-02 15:04 MST"); got != "Sat 2026-07-18 02:00 KST" {
		t.Fatalf("next opening = %s, want Sat 2026-07-18 02:00 KST", got)
	}
	if !start.Equal(utc(2026, 7, 17, 17, 0)) || !end.Equal(utc(2026, 7, 17, 20, 0)) {
		t.Fatalf("next window = [%s, %s), want [17:00, 20:00) UTC on Friday", start.UTC(), end.UTC())
	}
	// One minute before: still held. At the start: open. Three hours later: closed
	// again until Sunday 02:00 KST.
	for _, step := range []struct {
		at   time.Time
		open bool
	}{
		{start.Add(-time.Minute), false},
		{start, true},
		{start.Add(2*time.Hour + 59*time.Minute), true},
		{end, false},
	} {
		if got := s.Open(step.at); got != step.open {
			t.Errorf("Open(%s) = %v, want %v", step.at.In(seoul), got, step.open)
		}
	}
	expectPeriod(t, s, end, time.Date(2026, 7, 19, 2, 0, 0, 0, seoul), time.Date(2026, 7, 19, 5, 0, 0, 0, seoul))
	// After Sunday's window: next Saturday.
	expectPeriod(t, s, time.Date(2026, 7, 19, 5, 0, 0, 0, seoul), time.Date(2026, 7, 25, 2, 0, 0, 0, seoul), time.Date(2026, 7, 25, 5, 0, 0, 0, seoul))
}

func TestWindowSpansMidnightAndWeekBoundary(t *testing.T) {
	s := mustParse(t, hostspec.Window{Days: []string{"sun"}, Start: "23:00", Duration: hours(3), Timezone: "Europe/Berlin"})
	berlin, _ := time.LoadLocation("Europe/Berlin")
	sunday := time.Date(2026, 7, 19, 23, 0, 0, 0, berlin)
	mondayEnd := time.Date(2026, 7, 20, 2, 0, 0, 0, berlin)
	// Monday 01:00 belongs to Sunday's window.
	expectPeriod(t, s, time.Date(2026, 7, 20, 1, 0, 0, 0, berlin), sunday, mondayEnd)
	// Monday 02:00: closed until next Sunday.
	expectPeriod(t, s, mondayEnd, sunday.AddDate(0, 0, 7), mondayEnd.AddDate(0, 0, 7))
	// Year boundary: Sunday 2028-12-31 23:00 runs into Monday 2029-01-01.
	expectPeriod(t, s, time.Date(2029, 1, 1, 0, 30, 0, 0, berlin), time.Date(2028, 12, 31, 23, 0, 0, 0, berlin), time.Date(2029, 1, 1, 2, 0, 0, 0, berlin))
}

func TestOffsetFollowsSummerAndWinterTime(t *testing.T) {
	s := mustParse(t, hostspec.Window{Days: []string{"wed"}, Start: "09:00", Duration: hours(1), Timezone: "America/New_York"})
	// 09:00 EST = 14:00 UTC in January, 09:00 EDT = 13:00 UTC in July.
	expectPeriod(t, s, utc(2026, 1, 14, 0, 0), utc(2026, 1, 14, 14, 0), utc(2026, 1, 14, 15, 0))
	expectPeriod(t, s, utc(2026, 7, 15, 0, 0), utc(2026, 7, 15, 13, 0), utc(2026, 7, 15, 14, 0))
	// Lord Howe shifts by only 30 minutes: 09:00 is 22:30 UTC (+10:30) in
	// winter and 22:00 UTC (+11) in summer, the day before.
	lh := mustParse(t, hostspec.Window{Days: []string{"wed"}, Start: "09:00", Duration: hours(1), Timezone: "Australia/Lord_Howe"})
	expectPeriod(t, lh, utc(2026, 7, 14, 0, 0), utc(2026, 7, 14, 22, 30), utc(2026, 7, 14, 23, 30))
	expectPeriod(t, lh, utc(2026, 1, 13, 0, 0), utc(2026, 1, 13, 22, 0), utc(2026, 1, 13, 23, 0))
}

// Spring forward: a start inside the skipped hour opens at the first instant
// after the gap and keeps its full duration; a window that starts before the
// gap lasts its real duration across it.
func TestSpringForwardStartInGapOpensAfterTheGap(t *testing.T) {
	cases := []struct {
		name       string
		zone       string
		start      string
		dur        float64
		at         time.Time // shortly before, on the DST day
		wantStart  time.Time
		wantEnd    time.Time
		wantLocalS string
	}{
		// New York, Sunday 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC.
		{"new york 02:30", "America/New_York", "02:30", 1, utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0), "03:00 EDT"},
		{"new york 02:00", "America/New_York", "02:00", 1, utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0), "03:00 EDT"},
		{"new york 01:30 across the gap", "America/New_York", "01:30", 2, utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 8, 30), "01:30 EST"},
		{"new york 03:00 right after", "America/New_York", "03:00", 1, utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0), "03:00 EDT"},
		// Berlin, Sunday 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC.
		{"berlin 02:30", "Europe/Berlin", "02:30", 3, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 4, 0), "03:00 CEST"},
		// Lord Howe, Sunday 2026-10-04: 02:00 +1030 -> 02:30 +11 at 15:30 UTC on the 3rd.
		{"lord howe 02:15", "Australia/Lord_Howe", "02:15", 1, utc(2026, 10, 3, 12, 0), utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 16, 30), "02:30 +11"},
		// Santiago, Sunday 2026-09-06: midnight -04 -> 01:00 -03 at 04:00 UTC.
		{"santiago midnight", "America/Santiago", "00:00", 1, utc(2026, 9, 6, 0, 0), utc(2026, 9, 6, 4, 0), utc(2026, 9, 6, 5, 0), "01:00 -03"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, hostspec.Window{Days: []string{"sun"}, Start: tc.start, Duration: hours(tc.dur), Timezone: tc.zone})
			expectPeriod(t, s, tc.at, tc.wantStart, tc.wantEnd)
			start, _ := s.Next(tc.at)
			if got := start.Format("15:04 MST"); got != tc.wantLocalS {
				t.Fatalf("opens at local %s, want %s", got, tc.wantLocalS)
			}
			// The following Sunday is an ordinary day again.
			loc, _ := time.LoadLocation(tc.zone)
			next, _ := s.Next(tc.wantEnd)
			if got, want := next.In(loc).Format("Mon 15:04"), "Sun "+tc.start; got != want {
				t.Fatalf("week after the change opens at %s, want %s", got, want)
			}
		})
	}
}

// Fall back: a start that occurs twice opens once, at the first occurrence,
// for its real duration.
func TestFallBackRepeatedStartOpensOnceAtFirstOccurrence(t *testing.T) {
	cases := []struct {
		name      string
		zone      string
		start     string
		dur       time.Duration
		wantStart time.Time
		wantEnd   time.Time
		second    time.Time // an instant inside the second occurrence, past the end
	}{
		// New York, Sunday 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC.
		// 01:30 EDT = 05:30 UTC; 01:30 EST = 06:30 UTC.
		{"new york", "America/New_York", "01:30", time.Hour, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 6, 45)},
		{"new york short", "America/New_York", "01:30", 20 * time.Minute, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 5, 50), utc(2026, 11, 1, 6, 35)},
		// Berlin, Sunday 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC.
		{"berlin", "Europe/Berlin", "02:30", 45 * time.Minute, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 1, 40)},
		// Lord Howe, Sunday 2026-04-05: 02:00 +11 -> 01:30 +1030 at 15:00 UTC on the 4th.
		{"lord howe", "Australia/Lord_Howe", "01:45", 20 * time.Minute, utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 5), utc(2026, 4, 4, 15, 20)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, hostspec.Window{Days: []string{"sun"}, Start: tc.start, Duration: hostspec.Duration(tc.dur), Timezone: tc.zone})
			expectPeriod(t, s, tc.wantStart.Add(-3*time.Hour), tc.wantStart, tc.wantEnd)
			loc, _ := time.LoadLocation(tc.zone)
			if got := tc.second.In(loc).Format("15:04"); got < tc.start {
				t.Fatalf("test bug: %s is not in the repeated hour (%s)", tc.second, got)
			}
			if s.Open(tc.second) {
				t.Fatalf("open again at the second occurrence %s", tc.second.In(loc))
			}
			next, _ := s.Next(tc.second)
			if d := next.Sub(tc.wantStart); d < 6*24*time.Hour {
				t.Fatalf("after the first occurrence the next opening is %s, want next week", next.In(loc))
			}
		})
	}
}

func TestOverlappingWindowsAcrossZonesFormOnePeriod(t *testing.T) {
	s := mustParse(t,
		// Monday 22:00–01:00 UTC and Tuesday 09:30–11:30 in Seoul (00:30–02:30 UTC).
		hostspec.Window{Days: []string{"mon"}, Start: "22:00", Duration: hours(3)},
		hostspec.Window{Days: []string{"tue"}, Start: "09:30", Duration: hours(2), Timezone: "Asia/Seoul"},
		// A separate Thursday window.
		hostspec.Window{Days: []string{"thu"}, Start: "12:00", Duration: hours(1)},
	)
	expectPeriod(t, s, utc(2026, 7, 20, 23, 0), utc(2026, 7, 20, 22, 0), utc(2026, 7, 21, 2, 30))
	expectPeriod(t, s, utc(2026, 7, 21, 2, 30), utc(2026, 7, 23, 12, 0), utc(2026, 7, 23, 13, 0))
	// Touching windows (one ends as the next starts) also form one period.
	touch := mustParse(t,
		hostspec.Window{Days: []string{"fri"}, Start: "20:00", Duration: hours(2)},
		hostspec.Window{Days: []string{"fri"}, Start: "22:00", Duration: hours(1)},
	)
	expectPeriod(t, touch, utc(2026, 7, 24, 21, 0), utc(2026, 7, 24, 20, 0), utc(2026, 7, 24, 23, 0))
}

// oracleStart is an independent definition of when a window occurrence on a
// local date opens: the first instant at which the local clock reads the
// start time or later. It scans a 15-minute UTC grid, which hits every
// local quarter hour because every zone used below has offsets in whole
// quarter hours and changes them on quarter-hour boundaries.
func oracleStart(date time.Time, hh, mm int, loc *time.Location) time.Time {
	target := time.Date(date.Year(), date.Month(), date.Day(), hh, mm, 0, 0, time.UTC)
	for u := target.Add(-15 * time.Hour); ; u = u.Add(15 * time.Minute) {
		l := u.In(loc)
		wall := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC)
		if !wall.Before(target) {
			return u
		}
	}
}

type oracleWindow struct {
	days     map[time.Weekday]bool
	hh, mm   int
	duration time.Duration
	loc      *time.Location
}

// oracle returns whether t is inside an occurrence and the earliest
// occurrence start after t.
func oracle(ws []oracleWindow, t time.Time) (open bool, nextStart time.Time) {
	for _, w := range ws {
		l := t.In(w.loc)
		for k := -8; k <= 8; k++ {
			date := time.Date(l.Year(), l.Month(), l.Day()+k, 12, 0, 0, 0, time.UTC)
			if !w.days[date.Weekday()] {
				continue
			}
			s := oracleStart(date, w.hh, w.mm, w.loc)
			if !s.After(t) && t.Before(s.Add(w.duration)) {
				open = true
			}
			if s.After(t) && (nextStart.IsZero() || s.Before(nextStart)) {
				nextStart = s
			}
		}
	}
	return open, nextStart
}

// Property test: for random schedules in zones with every kind of DST rule
// and random instants over several years, Open and Next agree with each
// other and with the independent oracle above.
func TestRandomSchedulesAgreeWithOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	from := utc(2024, 1, 1, 0, 0)
	span := utc(2031, 1, 1, 0, 0).Sub(from)

	samples := 3000
	if testing.Short() || raceEnabled {
		samples = 500
	}
	for i := 0; i < samples; i++ {
		specs, ow := randomWindows(t, rng)
		s := mustParse(t, specs...)
		at := from.Add(time.Duration(rng.Int64N(int64(span))))
		// Bias some samples onto DST days' small hours, where the bugs are.
		if rng.IntN(3) == 0 {
			at = time.Date(at.Year(), []time.Month{3, 4, 9, 10, 11}[rng.IntN(5)], 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).
				Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
		}

		open, nextStart := oracle(ow, at)
		start, end := s.Next(at)
		if got := s.Open(at); got != open {
			t.Fatalf("sample %d %v at %s: Open = %v, oracle says %v", i, specs, at, got, open)
		}
		if !end.After(start) {
			t.Fatalf("sample %d: empty period [%s, %s)", i, start, end)
		}
		if open != (!start.After(at) && at.Before(end)) {
			t.Fatalf("sample %d %v at %s: Open = %v but Next = [%s, %s)", i, specs, at, open, start, end)
		}
		if !open {
			if !start.Equal(nextStart) {
				t.Fatalf("sample %d %v at %s: Next starts %s, oracle says %s", i, specs, at, start.UTC(), nextStart.UTC())
			}
			// Closed all the way until start, and the answer does not change
			// as the clock advances towards it.
			mid := at.Add(time.Duration(rng.Int64N(int64(start.Sub(at)))))
			if s.Open(mid) {
				t.Fatalf("sample %d %v: open at %s before the announced start %s", i, specs, mid, start)
			}
			if s2, e2 := s.Next(mid); !s2.Equal(start) || !e2.Equal(end) {
				t.Fatalf("sample %d %v: Next moved from [%s, %s) to [%s, %s) at %s", i, specs, start, end, s2, e2, mid)
			}
		}
		if end.Sub(at) < 7*24*time.Hour && end.Sub(start) < 7*24*time.Hour {
			// A period ends where no window is open (unless it only ends at the
			// evaluation horizon, which needs week-long windows).
			if o, _ := oracle(ow, end); o {
				t.Fatalf("sample %d %v: period [%s, %s) ends while the oracle says a window is open", i, specs, start, end)
			}
			if o, _ := oracle(ow, end.Add(-time.Nanosecond)); !o {
				t.Fatalf("sample %d %v: period [%s, %s) is not open at its last instant", i, specs, start, end)
			}
		}
	}
}

// randomWindows returns one to three random windows, as the fleet writes
// them and as the oracle sees them.
func randomWindows(t *testing.T, rng *rand.Rand) ([]hostspec.Window, []oracleWindow) {
	t.Helper()
	zones := []string{"UTC", "Asia/Seoul", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
		"America/Santiago", "Pacific/Chatham", "Europe/Dublin", "America/St_Johns", "Asia/Kathmandu"}
	dayList := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	var specs []hostspec.Window
	var ow []oracleWindow
	for n := 1 + rng.IntN(3); n > 0; n-- {
		zone := zones[rng.IntN(len(zones))]
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		w := oracleWindow{days: map[time.Weekday]bool{}, hh: rng.IntN(24), mm: 15 * rng.IntN(4), loc: loc}
		// Mostly short windows, sometimes up to a week.
		w.duration = time.Duration(1+rng.IntN(6*60)) * time.Minute
		if rng.IntN(10) == 0 {
			w.duration = time.Duration(1+rng.IntN(7*24*60)) * time.Minute
		}
		var days []string
		for d := range dayList {
			if rng.IntN(4) == 0 {
				days = append(days, dayList[d])
				w.days[time.Weekday(d)] = true
			}
		}
		if len(days) == 0 {
			d := rng.IntN(7)
			days = append(days, dayList[d])
			w.days[time.Weekday(d)] = true
		}
		specs = append(specs, hostspec.Window{Days: days, Start: time.Date(0, 1, 1, w.hh, w.mm, 0, 0, time.UTC).Format("15:04"),
			Duration: hostspec.Duration(w.duration), Timezone: zone})
		ow = append(ow, w)
	}
	return specs, ow
}

func BenchmarkNext(b *testing.B) {
	s, err := Parse([]hostspec.Window{
		{Days: []string{"sat", "sun"}, Start: "02:00", Duration: hours(3), Timezone: "Asia/Seoul"},
		{Days: []string{"wed"}, Start: "01:30", Duration: hours(1), Timezone: "America/New_York"},
	})
	if err != nil {
		b.Fatal(err)
	}
	at := utc(2026, 11, 1, 5, 0)
	for b.Loop() {
		s.Next(at)
	}
}

func TestZeroScheduleIsNeverOpen(t *testing.T) {
	var s Schedule
	if s.Open(utc(2026, 7, 18, 2, 0)) {
		t.Fatal("a Schedule without windows is open")
	}
}
