package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent's Prometheus metrics. They live in their own
// registry so that tests and several agents in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	desired       *prometheus.GaugeVec
	booted        *prometheus.GaugeVec
	lastSuccess   prometheus.Gauge
	passDuration  prometheus.Histogram
	errors        *prometheus.CounterVec
	drift         prometheus.Gauge
	rebootPending prometheus.Gauge
	quarantined   prometheus.Gauge
	checkFailures *prometheus.CounterVec
	state         *prometheus.GaugeVec
	otherUpdaters *prometheus.GaugeVec
	fleet         *fleetMetrics
}

// NewMetrics registers the agent's metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_desired_image_info",
			Help: "The image the fleet repository asks for (always 1).",
		}, []string{"ref", "digest", "commit"}),
		booted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_booted_image_info",
			Help: "The image bootc reports as booted (always 1).",
		}, []string{"digest", "commit"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootsync_last_success_timestamp_seconds",
			Help: "When the last pass finished without error.",
		}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bootsync_pass_duration_seconds",
			Help:    "Duration of reconcile passes.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootsync_errors_total",
			Help: "Passes that failed, by reason.",
		}, []string{"reason"}),
		drift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootsync_drift_files",
			Help: "Managed /etc files that differ from what bootsync wrote.",
		}),
		rebootPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootsync_reboot_pending",
			Help: "1 when an update is staged and waits for a reboot.",
		}),
		quarantined: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bootsync_quarantined_images",
			Help: "Images that failed verification and are not tried again.",
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_state",
			Help: "The state of the last pass (1 for the current state): converged, updating, waiting, verifying, paused, quarantined, refused, unmanaged.",
		}, []string{"state"}),
		otherUpdaters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bootsync_other_updater_enabled",
			Help: "1 for each other update service enabled on the host (bootc-fetch-apply-updates.timer, zincati.service, rpm-ostreed-automatic.timer).",
		}, []string{"unit"}),
		checkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bootsync_health_check_failures_total",
			Help: "Failed health-check verdicts after an update, by check.",
		}, []string{"check"}),
	}
	m.Registry.MustRegister(m.desired, m.booted, m.lastSuccess, m.passDuration, m.errors,
		m.drift, m.rebootPending, m.quarantined, m.checkFailures, m.state, m.otherUpdaters)
	m.fleet = newFleetMetrics(m.Registry)
	return m
}

// observePass records the outcome of one pass.
func (m *Metrics) observePass(st *Status, started time.Time, reason Reason) {
	if m == nil {
		return
	}
	m.passDuration.Observe(time.Since(started).Seconds())
	if reason != "" {
		m.errors.WithLabelValues(string(reason)).Inc()
	} else {
		m.lastSuccess.Set(float64(time.Now().Unix()))
	}
	if st.Desired != nil {
		m.desired.Reset()
		m.desired.WithLabelValues(st.Desired.Ref, st.Desired.Digest, st.Desired.Commit).Set(1)
	}
	if st.Booted != nil {
		m.booted.Reset()
		m.booted.WithLabelValues(st.Booted.Digest, st.BootedCommit).Set(1)
	}
	m.drift.Set(float64(len(st.Drift)))
	if st.RebootPending {
		m.rebootPending.Set(1)
	} else {
		m.rebootPending.Set(0)
	}
	m.quarantined.Set(float64(len(st.Quarantine)))
	m.otherUpdaters.Reset()
	for _, u := range st.OtherUpdaters {
		m.otherUpdaters.WithLabelValues(u).Set(1)
	}
	if st.LastPass != nil && st.LastPass.State != "" {
		m.state.Reset()
		m.state.WithLabelValues(string(st.LastPass.State)).Set(1)
	}
	m.fleet.observe(st, reason, time.Now())
}

// checkFailed counts a failed health-check verdict.
func (m *Metrics) checkFailed(name string) {
	if m != nil {
		m.checkFailures.WithLabelValues(name).Inc()
	}
}

// passFailed records a pass that could not start: its duration and its
// error, leaving the gauges of the last pass that ran as they are.
func (m *Metrics) passFailed(reason Reason, started time.Time) {
	if m == nil {
		return
	}
	m.passDuration.Observe(time.Since(started).Seconds())
	m.errors.WithLabelValues(string(reason)).Inc()
}

// countError counts an error outside a pass's own outcome (status.json
// could not be written).
func (m *Metrics) countError(reason Reason) {
	if m != nil {
		m.errors.WithLabelValues(string(reason)).Inc()
	}
}
