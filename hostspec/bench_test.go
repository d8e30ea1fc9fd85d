package hostspec

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/bootsync/bootsync/test/bench/genfleet/fleetgen"
)

func generated(b testing.TB, hosts, groups int) fleetgen.Repo {
	b.Helper()
	g, err := fleetgen.Generate(fleetgen.Config{Hosts: hosts, Groups: groups, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// cpuTime is the CPU time this process has used (all threads, user and
// system). Benchmarks report work per CPU second next to the wall-clock
// figure, which a busy machine distorts.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkResolveAll resolves and renders every host of a 10,000-host,
// 50-group fleet; hosts/s is the figure to watch (target: >= 30,000 on
// one core: run with -cpu 1 and -benchtime 3s, as the first iteration
// also builds every base).
func BenchmarkResolveAll(b *testing.B) {
	fsys := generated(b, 10000, 50).MapFS()
	ctx := context.Background()
	repo, err := Load(ctx, fsys)
	if err != nil {
		b.Fatal(err)
	}
	names := repo.HostNames()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		for _, n := range names {
			if _, err := repo.Resolve(ctx, n, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	hosts := float64(b.N * len(names))
	b.ReportMetric(hosts/b.Elapsed().Seconds(), "hosts/s")
	b.ReportMetric(hosts/(cpuTime(b)-cpu0).Seconds(), "hosts/cpu-s")
}

// BenchmarkLoad loads a repository and resolves every host, at three sizes
// so that growth can be read off as linear (or not): compare µs/host.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			fsys := generated(b, n, 50).MapFS()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for b.Loop() {
				repo, err := Load(ctx, fsys)
				if err != nil {
					b.Fatal(err)
				}
				for _, h := range repo.HostNames() {
					if _, err := repo.Resolve(ctx, h, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load+resolve")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/host")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/host")
		})
	}
}

// BenchmarkLoadForOneHost is what an agent or `bootsync render HOST` pays
// for a new commit: loading the repository for one host (its own file
// decoded, the others only listed) against loading it whole, in the same
// process. Compare the two sub-benchmarks' ns/op.
func BenchmarkLoadForOneHost(b *testing.B) {
	fsys := generated(b, 10000, 50).MapFS()
	ctx := context.Background()
	whole, err := Load(ctx, fsys)
	if err != nil {
		b.Fatal(err)
	}
	host := whole.HostNames()[len(whole.HostNames())/2]
	for _, tc := range []struct {
		name string
		opts []LoadOption
	}{
		{"whole", nil},
		{"own-file", []LoadOption{WithHostFiles(func(n string) bool { return n == host })}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				repo, err := Load(ctx, fsys, tc.opts...)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := repo.Resolve(ctx, host, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
