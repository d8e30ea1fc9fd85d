package hostspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Rollout is fleet.yaml's `rollout:` policy: the waves in which
// `bootsync rollout` widens one group's bucket range, how long each wave
// soaks, and how many failed hosts halt it. Agents do not read it: every
// step the job takes is an ordinary commit to the group's file.
//
//	rollout:
//	  group: next                 # groups/…: the group whose spec rolls out
//	  waves:                      # bucket ranges, each containing the one before
//	    - {bucket: "0-9", soak: 30m}
//	    - {bucket: "0-49", soak: 1h}
//	    - {bucket: "0-99"}
//	  failureBudget: 0            # failed hosts tolerated (or "5%" of the hosts the rollout reached)
//	  onFailure: pause            # pause (default): update.paused in the group; revert: the group as before the rollout
type Rollout struct {
	Group         string        `json:"group"`
	Waves         []Wave        `json:"waves"`
	FailureBudget FailureBudget `json:"failureBudget"`
	OnFailure     string        `json:"onFailure"`
	Source        Source        `json:"source"`
	groupSrc      Source
}

// Wave is one step of a rollout: the group selects the hosts whose bucket
// is in [Lo, Hi], and the wave must run healthy for Soak before the next.
type Wave struct {
	Bucket string        `json:"bucket"`
	Lo     int           `json:"lo"`
	Hi     int           `json:"hi"`
	Soak   time.Duration `json:"soak"`
	Source Source        `json:"source"`
}

// FailureBudget is how many failed hosts a rollout tolerates: a count, or
// a percentage of the hosts it has reached.
type FailureBudget struct {
	Count   int     `json:"count,omitempty"`
	Percent float64 `json:"percent,omitempty"`
	IsShare bool    `json:"isPercent,omitempty"`
}

// Allowed is how many of reached hosts may fail.
func (b FailureBudget) Allowed(reached int) int {
	if !b.IsShare {
		return b.Count
	}
	return int(b.Percent * float64(reached) / 100)
}

func (b FailureBudget) String() string {
	if b.IsShare {
		return strconv.FormatFloat(b.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(b.Count)
}

// What a rollout does when failures exceed its budget.
const (
	OnFailurePause  = "pause"
	OnFailureRevert = "revert"
)

// rolloutDoc is `rollout:` being decoded: which required keys were seen,
// so a missing one is reported once, and an invalid one only as invalid.
type rolloutDoc struct {
	r                  Rollout
	sawGroup, sawWaves bool
}

var rolloutObject = objectOf(
	field[rolloutDoc]{key: "group", parse: func(d *decoder, v *yaml.Node, f string, doc *rolloutDoc) {
		doc.sawGroup = true
		if s, ok := d.text(v, f); ok && d.checkName(v, f, s) {
			doc.r.Group, doc.r.groupSrc = s, d.src(v)
		}
	}},
	field[rolloutDoc]{key: "waves", parse: func(d *decoder, v *yaml.Node, f string, doc *rolloutDoc) {
		doc.sawWaves = true
		d.sequence(v, f, func(_ int, item *yaml.Node, f string) {
			if w, ok := d.wave(item, f); ok {
				d.checkWidens(item, f, doc.r.Waves, w)
				doc.r.Waves = append(doc.r.Waves, w)
			}
		})
	}},
	field[rolloutDoc]{key: "failureBudget", parse: func(d *decoder, v *yaml.Node, f string, doc *rolloutDoc) {
		if s, ok := d.text(v, f); ok {
			b, msg := parseFailureBudget(s)
			if msg != "" {
				d.failf(v, f, "%s", msg)
			}
			doc.r.FailureBudget = b
		}
	}},
	field[rolloutDoc]{key: "onFailure", parse: func(d *decoder, v *yaml.Node, f string, doc *rolloutDoc) {
		if s, ok := d.text(v, f); ok {
			if s != OnFailurePause && s != OnFailureRevert {
				d.failf(v, f, "invalid value %q: want pause or revert", s)
			}
			doc.r.OnFailure = s
		}
	}},
)

func (d *decoder) rollout(n *yaml.Node, field string) *Rollout {
	doc := rolloutDoc{r: Rollout{OnFailure: OnFailurePause, Source: d.src(n)}}
	if !rolloutObject.decode(d, n, field, &doc) {
		return &doc.r
	}
	if !doc.sawGroup {
		d.failf(n, field+".group", "missing: name the group whose spec rolls out (a file under groups/)")
	}
	if !doc.sawWaves {
		d.failf(n, field+".waves", "missing: list the waves as bucket ranges, e.g. [{bucket: \"0-9\", soak: 1h}, {bucket: \"0-99\"}]")
	}
	return &doc.r
}

// waveDoc is one wave being decoded.
type waveDoc struct {
	w                   Wave
	sawBucket, bucketOK bool
}

var waveObject = objectOf(
	field[waveDoc]{key: "bucket", parse: func(d *decoder, v *yaml.Node, f string, doc *waveDoc) {
		doc.sawBucket = true
		if s, lo, hi, ok := d.bucketRange(v, f); ok {
			doc.w.Bucket, doc.w.Lo, doc.w.Hi, doc.bucketOK = s, lo, hi, true
		}
	}},
	field[waveDoc]{key: "soak", parse: func(d *decoder, v *yaml.Node, f string, doc *waveDoc) {
		if x, ok := d.duration(v, f); ok {
			doc.w.Soak = time.Duration(x)
		}
	}},
)

func (d *decoder) wave(n *yaml.Node, field string) (Wave, bool) {
	doc := waveDoc{w: Wave{Source: d.src(n)}}
	ok := waveObject.decode(d, n, field, &doc)
	if ok && !doc.sawBucket {
		d.failf(n, field+".bucket", "missing: a wave is a bucket range such as \"0-9\"")
	}
	return doc.w, ok && doc.bucketOK
}

// checkWidens reports a wave that does not contain the one before it: a
// rollout only ever adds hosts.
func (d *decoder) checkWidens(n *yaml.Node, field string, before []Wave, w Wave) {
	if len(before) == 0 {
		return
	}
	prev := before[len(before)-1]
	if w.Lo > prev.Lo || w.Hi < prev.Hi || (w.Lo == prev.Lo && w.Hi == prev.Hi) {
		d.failf(n, field, "wave %q must contain the wave before it (%q) and be wider: a rollout only adds hosts", w.Bucket, prev.Bucket)
	}
}

// parseFailureBudget parses "3" or "5%".
func parseFailureBudget(s string) (FailureBudget, string) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v > 100 {
			return FailureBudget{}, fmt.Sprintf("invalid failure budget %q: want a number of hosts (0, 1, …) or a percentage from 0%% to 100%%", s)
		}
		return FailureBudget{Percent: v, IsShare: true}, ""
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return FailureBudget{}, fmt.Sprintf("invalid failure budget %q: want a number of hosts (0, 1, …) or a percentage such as \"5%%\"", s)
	}
	return FailureBudget{Count: v}, ""
}

// checkRollout reports a rollout group without a bucket range. A group
// that does not exist is no rollout in progress (a reverted rollout may
// have removed it); `bootsync rollout` says so.
func (l *loader) checkRollout(repo *Repo) {
	r := repo.fleet.Rollout
	if r == nil || r.Group == "" || len(r.Waves) == 0 {
		return
	}
	for _, g := range repo.groups {
		if g.Name == r.Group && !g.Selector.hasBucket {
			l.fail(FleetFile, r.groupSrc, "rollout.group", "group %q has no selector.bucket: a rollout widens the group's bucket range (add bucket: %q to its selector)", r.Group, r.Waves[0].Bucket)
		}
	}
}

// ParseBucketRange parses a bucket range as selectors and waves write it:
// "lo-hi" or "n", within 0..99.
func ParseBucketRange(s string) (lo, hi int, err error) {
	lo, hi, msg := parseBucketRange(s)
	if msg != "" {
		return 0, 0, errors.New(msg)
	}
	return lo, hi, nil
}
