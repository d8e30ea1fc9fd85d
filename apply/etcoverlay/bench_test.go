package etcoverlay

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

// BenchmarkPlanNoop measures the agent's pass when nothing changed: 200
// managed files, spread over 20 directories, all as bootsync wrote them.
func BenchmarkPlanNoop(b *testing.B) {
	f := newFixture(b)
	files := make([]hostspec.EtcFile, 0, 200)
	for i := range 200 {
		content := fmt.Sprintf("# file %d\nkey=value\nanother=line with some text %d\n", i, i)
		files = append(files, etcFile(fmt.Sprintf("/etc/bench%02d.d/file%03d.conf", i%20, i), content, restart("app.service")))
	}
	f.pass(b, files)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		p, err := f.w.Plan(ctx, files)
		if err != nil {
			b.Fatal(err)
		}
		if !p.NoOp() {
			b.Fatalf("not a no-op: %v", changeSummary(p))
		}
	}
	// The goal is CPU per pass: report it beside wall time (ns/op), which
	// also counts waiting for the disk.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
