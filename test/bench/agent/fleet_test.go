package agent

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
)

// envBootsync names a prebuilt bootsync binary (agent.sh builds one);
// without it the benchmark builds cmd/bootsync once per test binary.
const envBootsync = "BOOTSYNC_BENCH_BIN"

var bootsyncBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// bootsyncBinary returns the bootsync executable the host runs.
func bootsyncBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv(envBootsync); bin != "" {
		return bin
	}
	bootsyncBuild.once.Do(func() {
		bootsyncBuild.dir, bootsyncBuild.err = os.MkdirTemp("", "bootsync-bench-agent-")
		if bootsyncBuild.err != nil {
			return
		}
		bootsyncBuild.bin, bootsyncBuild.err = fleettest.BuildBootsync(bootsyncBuild.dir)
	})
	if bootsyncBuild.err != nil {
		tb.Fatal(bootsyncBuild.err)
	}
	return bootsyncBuild.bin
}

// pinning is how the fleet names its image.
type pinning struct {
	name  string
	files func(f *fleettest.Fleet, tag, pinned string) map[string]string
}

// pinnings are the two ways a no-op pass needs no registry request.
var pinnings = []pinning{
	{"pinned", func(f *fleettest.Fleet, _, pinned string) map[string]string {
		return map[string]string{"fleet.yaml": f.FleetYAML(pinned, "")}
	}},
	{"locked", func(f *fleettest.Fleet, tag, pinned string) map[string]string {
		return map[string]string{
			"fleet.yaml":    f.FleetYAML(f.TagRef(tag), ""),
			"bootsync.lock": "apiVersion: bootsync.dev/v1alpha1\nkind: Lock\nimages:\n  " + f.TagRef(tag) + ": " + fleettest.DigestOf(pinned) + "\n",
		}
	}},
}

// setup makes a fleet with one signed image named as p says and a host
// that already runs it, converged by real passes (which wrote /etc and
// cached the signature verdict) until one had nothing left to do, so the
// agent measured afterwards only has no-op passes to run. The agent serves
// metrics, as on a host.
func setup(tb testing.TB, p pinning, interval time.Duration) (*fleettest.Fleet, *fleettest.Host) {
	tb.Helper()
	f := fleettest.New(tb, bootsyncBinary(tb))
	pinned := f.Image("v1", bootcsim.ImageOptions{}, true)
	f.Commit("v1 "+p.name, p.files(f, "v1", pinned))
	h := f.NewHost("web-01", pinned, fleettest.HostOptions{Interval: interval.String(), Metrics: "127.0.0.1:0"})
	h.Converge(3)
	if st := h.MustPass(); st.Exit != 0 {
		tb.Fatalf("pass after converging: %s", st)
	}
	st := h.Status()
	if st.LastPass == nil || st.LastPass.State != reconcile.StateConverged || len(st.LastPass.Steps) != 0 {
		tb.Fatalf("after converging, the last pass is %+v, want converged with nothing to do", st.LastPass)
	}
	if st.Desired == nil || st.Desired.Target != pinned {
		tb.Fatalf("after converging, desired = %+v, want target %s", st.Desired, pinned)
	}
	return f, h
}
