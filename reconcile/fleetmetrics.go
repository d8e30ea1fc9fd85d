package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fleetMetrics are what `bootsync fleet status` and `bootsync rollout` read
// through Prometheus: which host this is, how its last pass ended, its last
// verification and its quarantine. Labels stay bounded: a host name, digests,
// commits, check names and reason codes, never a message or a file.
type fleetMetrics struct {
	host        *prometheus.GaugeVec
	lastPass    prometheus.Gauge
	passResult  *prometheus.GaugeVec
	health      *prometheus.GaugeVec
	quarantine  *prometheus.GaugeVec
	stateSince  prometheus.Gauge
	state       string // the state stateSince belongs to
	stateSeenAt time.Time
}

func newFleetMetrics(reg *prometheus.Registry) *fleetMetrics {
	f := &fleetMetrics{
		host: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_host_info",
			Help: "The host name this agent reconciles (always 1); join other series on instance to name their host.",
		}, []string{"host"}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootsync_last_pass_timestamp_seconds",
			Help: "When the last pass ended.",
		}),
		passResult: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_last_pass_result",
			Help: "How the last pass ended (always 1): result ok or error, and the error's reason code.",
		}, []string{"result", "reason"}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_health_passed",
			Help: "The last verification after an update: 1 when its health checks passed, 0 when they failed, by the digest verified.",
		}, []string{"digest"}),
		quarantine: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_quarantined_image_info",
			Help: "An image this host quarantined (always 1), with the health check that failed it.",
		}, []string{"digest", "check"}),
		stateSince: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootsync_state_since_timestamp_seconds",
			Help: "Since when this agent has seen the current bootsync_state, in this boot (rollouts soak from it).",
		}),
	}
	reg.MustRegister(f.host, f.lastPass, f.passResult, f.health, f.quarantine, f.stateSince)
	return f
}

// observe records what status.json says after a pass.
func (f *fleetMetrics) observe(st *Status, reason Reason, now time.Time) {
	f.host.Reset()
	f.host.WithLabelValues(st.Host).Set(1)
	f.lastPass.Set(float64(now.Unix()))
	f.passResult.Reset()
	if reason == "" {
		f.passResult.WithLabelValues("ok", "").Set(1)
	} else {
		f.passResult.WithLabelValues("error", string(reason)).Set(1)
	}
	f.health.Reset()
	if h := st.Health; h != nil && h.Digest != "" {
		v := 0.0
		if h.Passed {
			v = 1
		}
		f.health.WithLabelValues(h.Digest).Set(v)
	}
	f.quarantine.Reset()
	for _, q := range st.Quarantine {
		f.quarantine.WithLabelValues(q.Digest, q.Check).Set(1)
	}
	state := ""
	if st.LastPass != nil {
		state = string(st.LastPass.State)
	}
	if state != f.state || f.stateSeenAt.IsZero() {
		f.state, f.stateSeenAt = state, now
		f.stateSince.Set(float64(now.Unix()))
	}
}
