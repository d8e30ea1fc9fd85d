package fleetstatus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/bootsync/bootsync/internal/netdeadline"
)

// DefaultLookback is how far back a host that stopped reporting is still
// listed, with its last report.
const DefaultLookback = 24 * time.Hour

// Client reads the agents' metrics from Prometheus.
type Client struct {
	url      string
	api      promv1.API
	lookback time.Duration
}

// New reads from the Prometheus server at rawURL (http or https). Hosts
// whose last sample is older than lookback are not listed (unless the
// fleet repository declares them); every network phase must make progress
// within timeout.
func New(rawURL string, lookback, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want http(s)://host[:port][/path]", rawURL)
	}
	if lookback <= 0 {
		lookback = DefaultLookback
	}
	c, err := api.NewClient(api.Config{Address: rawURL, RoundTripper: netdeadline.Transport(timeout)})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", u.Redacted(), err)
	}
	return &Client{url: u.Redacted(), api: promv1.NewAPI(c), lookback: lookback}, nil
}

// Metric names the agent exports (reconcile/metrics.go).
const (
	mHost        = "bootsync_host_info"
	mDesired     = "bootsync_desired_image_info"
	mBooted      = "bootsync_booted_image_info"
	mState       = "bootsync_state"
	mStateSince  = "bootsync_state_since_timestamp_seconds"
	mLastPass    = "bootsync_last_pass_timestamp_seconds"
	mPassResult  = "bootsync_last_pass_result"
	mHealth      = "bootsync_health_passed"
	mQuarantined = "bootsync_quarantined_image_info"
	mReboot      = "bootsync_reboot_pending"
)

// MetricNames are the metrics fleet status reads.
var MetricNames = []string{mHost, mDesired, mBooted, mState, mStateSince, mLastPass, mPassResult, mHealth, mQuarantined, mReboot}

// sample is one series: its labels, its value, and when it was last seen.
type sample struct {
	labels model.Metric
	value  float64
	seen   float64 // unix seconds of its last sample
}

// Fetch reads every host's last report at now.
func (c *Client) Fetch(ctx context.Context, now time.Time) (*Fleet, error) {
	lb := model.Duration(c.lookback).String()
	step := model.Duration(min(time.Minute, max(time.Second, (c.lookback/240).Truncate(time.Second)))).String()
	queries := map[string]string{"reporting": mHost}
	for _, m := range MetricNames {
		// When each series was last seen: a host that stopped reporting
		// keeps its last labels, and of a label that changed, the newest.
		// The subquery's steps are aligned to multiples of step, so series
		// that are live now are read by an instant query too: a series
		// younger than one step would be missed otherwise.
		queries["seen:"+m] = fmt.Sprintf("max_over_time(timestamp(%s)[%s:%s])", m, lb, step)
		queries["now:"+m] = fmt.Sprintf("timestamp(%s)", m)
		queries["value:"+m] = fmt.Sprintf("last_over_time(%s[%s])", m, lb)
	}
	results := map[string]model.Vector{}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for key, q := range queries {
		wg.Go(func() {
			v, err := c.query(ctx, q, now)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			results[key] = v
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return assemble(c.url, now, results), nil
}

func (c *Client) query(ctx context.Context, q string, now time.Time) (model.Vector, error) {
	v, _, _, err := c.api.Query(ctx, q, now)
	if err != nil {
		return nil, fmt.Errorf("query prometheus %s for %s: %w", c.url, q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query prometheus %s for %s: got a %s, want a vector", c.url, q, v.Type())
	}
	return vec, nil
}

// series joins a metric's two queries by their labels.
func series(results map[string]model.Vector, metric string) []sample {
	values := map[model.Fingerprint]float64{}
	for _, s := range results["value:"+metric] {
		m := s.Metric.Clone()
		delete(m, model.MetricNameLabel)
		values[m.Fingerprint()] = float64(s.Value)
	}
	seen := map[model.Fingerprint]*sample{}
	var order []model.Fingerprint
	for _, key := range []string{"seen:" + metric, "now:" + metric} {
		for _, s := range results[key] {
			m := s.Metric.Clone()
			delete(m, model.MetricNameLabel)
			fp := m.Fingerprint()
			if prev, ok := seen[fp]; ok {
				prev.seen = max(prev.seen, float64(s.Value))
				continue
			}
			seen[fp] = &sample{labels: m, value: values[fp], seen: float64(s.Value)}
			order = append(order, fp)
		}
	}
	out := make([]sample, 0, len(order))
	for _, fp := range order {
		out = append(out, *seen[fp])
	}
	return out
}

// newest keeps, per instance, the series seen last (and every series seen
// then, for metrics that hold a set, such as quarantined images).
func newest(samples []sample) map[string][]sample {
	latest := map[string]float64{}
	for _, s := range samples {
		inst := instanceOf(s.labels)
		latest[inst] = max(latest[inst], s.seen)
	}
	out := map[string][]sample{}
	for _, s := range samples {
		inst := instanceOf(s.labels)
		// Series of one scrape share a timestamp; a step of slack covers
		// the subquery's rounding.
		if s.seen >= latest[inst]-1 {
			out[inst] = append(out[inst], s)
		}
	}
	return out
}

// instanceOf identifies an agent's endpoint by its job and instance.
func instanceOf(m model.Metric) string {
	return string(m["job"]) + "/" + string(m[model.InstanceLabel])
}

func assemble(source string, now time.Time, results map[string]model.Vector) *Fleet {
	reporting := map[string]bool{}
	for _, s := range results["reporting"] {
		reporting[instanceOf(s.Metric)] = true
	}
	by := map[string]map[string][]sample{}
	for _, m := range MetricNames {
		by[m] = newest(series(results, m))
	}
	// One host per name: when two endpoints claim it, the newest wins.
	hosts := map[string]*Host{}
	seenAt := map[string]float64{}
	for inst, ss := range by[mHost] {
		name := string(ss[0].labels["host"])
		if name == "" || (hosts[name] != nil && seenAt[name] >= ss[0].seen) {
			continue
		}
		h := &Host{Host: name, Instance: string(ss[0].labels[model.InstanceLabel]), Reporting: reporting[inst], Seen: true, Quarantined: []Quarantined{}}
		fill(h, inst, by)
		hosts[name], seenAt[name] = h, ss[0].seen
	}
	f := &Fleet{Source: source, Time: now}
	for _, h := range hosts {
		f.Hosts = append(f.Hosts, *h)
	}
	return f
}

// fill sets a host's fields from the newest series of its endpoint.
func fill(h *Host, inst string, by map[string]map[string][]sample) {
	one := func(m string) (sample, bool) {
		ss := by[m][inst]
		if len(ss) == 0 {
			return sample{}, false
		}
		return ss[0], true
	}
	if s, ok := one(mDesired); ok {
		h.Desired = Image{Ref: string(s.labels["ref"]), Digest: string(s.labels["digest"]), Commit: string(s.labels["commit"])}
	}
	if s, ok := one(mBooted); ok {
		h.Booted = Image{Digest: string(s.labels["digest"]), Commit: string(s.labels["commit"])}
	}
	if s, ok := one(mState); ok {
		h.State = string(s.labels["state"])
	}
	if s, ok := one(mStateSince); ok && s.value > 0 {
		h.StateSince = unix(s.value)
	}
	if s, ok := one(mLastPass); ok && s.value > 0 {
		h.LastPass = unix(s.value)
	}
	if s, ok := one(mPassResult); ok {
		h.Result, h.Reason = string(s.labels["result"]), string(s.labels["reason"])
	}
	if s, ok := one(mHealth); ok {
		h.Health = &Health{Digest: string(s.labels["digest"]), Passed: s.value == 1}
	}
	if s, ok := one(mReboot); ok {
		h.RebootPending = s.value == 1
	}
	for _, s := range by[mQuarantined][inst] {
		h.Quarantined = append(h.Quarantined, Quarantined{Digest: string(s.labels["digest"]), Check: string(s.labels["check"])})
	}
}

func unix(v float64) time.Time {
	sec, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 3, 64), 64)
	return time.Unix(int64(sec), 0).UTC()
}
