package reconcile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnabledUpdatersAndMetric(t *testing.T) {
	root := t.TempDir()
	link := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	if got := enabledUpdaters(root); len(got) != 0 {
		t.Fatalf("an empty root has updaters: %v", got)
	}
	link("/usr/lib/systemd/system/bootc-fetch-apply-updates.timer", "usr/lib/systemd/system/timers.target.wants/bootc-fetch-apply-updates.timer")
	link("/usr/lib/systemd/system/rpm-ostreed-automatic.timer", "etc/systemd/system/timers.target.wants/rpm-ostreed-automatic.timer")
	link("/usr/lib/systemd/system/zincati.service", "etc/systemd/system/multi-user.target.wants/zincati.service")
	link("/dev/null", "run/systemd/system/rpm-ostreed-automatic.timer") // masked at runtime

	var units []string
	for _, u := range enabledUpdaters(root) {
		units = append(units, u.unit)
	}
	if strings.Join(units, ",") != "bootc-fetch-apply-updates.timer,zincati.service" {
		t.Fatalf("enabled updaters = %v", units)
	}

	m := NewMetrics()
	m.observePass(&Status{OtherUpdaters: units}, time.Now(), "other-updater")
	if got := otherUpdaterSeries(t, m); strings.Join(got, ",") != "bootc-fetch-apply-updates.timer=1,zincati.service=1" {
		t.Fatalf("bootsync_other_updater_enabled = %v", got)
	}
	m.observePass(&Status{}, time.Now(), "")
	if got := otherUpdaterSeries(t, m); len(got) != 0 {
		t.Fatalf("after masking the series remain: %v", got)
	}
}

func otherUpdaterSeries(t *testing.T, m *Metrics) []string {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() != "bootsync_other_updater_enabled" {
			continue
		}
		for _, s := range f.GetMetric() {
			out = append(out, fmt.Sprintf("%s=%g", s.GetLabel()[0].GetValue(), s.GetGauge().GetValue()))
		}
	}
	return out
}
