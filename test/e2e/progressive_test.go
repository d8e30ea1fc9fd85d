package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/rollout"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/gitserver"
	"github.com/bootsync/bootsync/test/gitserver/gittest"
	"github.com/bootsync/bootsync/test/promserver"
)

// waveHosts picks ten host names: one in buckets 0-9 (10 %), four more in
// 10-49 (50 %), five in 50-99.
func waveHosts() (names []string, wave map[string]int) {
	wave = map[string]int{}
	need := [3]int{1, 4, 5}
	for i := 0; len(names) < 10; i++ {
		name := fmt.Sprintf("node-%03d", i)
		w := 2
		switch b := hostspec.Bucket(name); {
		case b <= 9:
			w = 0
		case b <= 49:
			w = 1
		}
		if need[w] > 0 {
			need[w]--
			names, wave[name] = append(names, name), w+1
		}
	}
	slices.Sort(names)
	return names, wave
}

const rolloutPolicy = `rollout:
  group: next
  waves:
    - {bucket: "0-9", soak: 3s}
    - {bucket: "0-49", soak: 3s}
    - {bucket: "0-99"}
  failureBudget: 0
`

func nextGroup(bucket, image string) string {
	return "apiVersion: bootsync.dev/v1alpha1\nkind: Group\nmetadata: {name: next}\nselector: {bucket: \"" + bucket + "\"}\nspec:\n  image: " + image + "\n"
}

// startRolloutFleet runs ten agents on v1 scraped by Prometheus, then
// commits the start of a rollout of image to wave 1.
func startRolloutFleet(t *testing.T, image func(*fleettest.Fleet) string) (*fleettest.Fleet, *promserver.Server, []*fleettest.Host, map[string]int, string) {
	prom := promserver.Start(t, time.Second)
	// The job pushes to the real git http-backend, which accepts pushes.
	f := newFleetOn(t, gitserver.New(t, gitserver.WithGitConfig("http.receivepack", "true")))
	v1 := f.Image("v1", bootcsim.ImageOptions{}, true)
	target := image(f)
	names, wave := waveHosts()
	f.Commit("v1", map[string]string{"fleet.yaml": f.FleetYAML(v1, "") + rolloutPolicy})
	var hosts []*fleettest.Host
	for _, name := range names {
		addr := freeAddr(t)
		h := f.NewHost(name, v1, hostOptions{Metrics: addr})
		prom.AddTargets(addr)
		h.StartAgent()
		hosts = append(hosts, h)
	}
	start := f.Commit("start the rollout of "+target, map[string]string{"groups/next.yaml": nextGroup("0-9", target)})
	return f, prom, hosts, wave, start
}

// runRollout runs `bootsync rollout` as CI would.
func runRollout(t *testing.T, f *fleettest.Fleet, prom *promserver.Server) rollout.Decision {
	t.Helper()
	d, err := tryRollout(f, prom)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tryRollout is runRollout for other goroutines than the test's.
func tryRollout(f *fleettest.Fleet, prom *promserver.Server) (rollout.Decision, error) {
	var d rollout.Decision
	cmd := exec.Command(bootsyncBin, "rollout", "--repo", f.URL, "--allow-http", "--prometheus", prom.URL(), "--lookback", "10m", "-o", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return d, fmt.Errorf("bootsync rollout: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, &d); err != nil {
		return d, fmt.Errorf("rollout -o json: %v\n%s", err, out)
	}
	return d, nil
}

// groupLog is the commits that changed the group's file, newest first.
func groupLog(t *testing.T, f *fleettest.Fleet) []string {
	dir := t.TempDir()
	gittest.Git(t, dir, nil, "clone", "-q", f.URL, "c")
	out := gittest.Git(t, dir+"/c", nil, "log", "--format=%H %s", "--", "groups/next.yaml")
	return strings.Split(strings.TrimSpace(out), "\n")
}

// The rollout job widens the group wave by wave, 10 % → 50 % → 100 %, one
// commit per wave, once each wave soaked healthy; two runs racing at a
// wave's end advance it once.
func TestRolloutAdvancesWaveByWave(t *testing.T) {
	var v2 string
	f, prom, hosts, _, _ := startRolloutFleet(t, func(f *fleettest.Fleet) string { v2 = f.Image("v2", bootcsim.ImageOptions{}, true); return v2 })
	var advances []rollout.Decision
	raced := false
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not complete in 5 minutes; advances: %+v", advances)
		}
		var ds []rollout.Decision
		if d := dryRun(t, f, prom); d.Action == rollout.ActionAdvance && !raced {
			// Two runs race: fast-forward pushes let one advance.
			raced = true
			var mu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					d, err := tryRollout(f, prom)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					}
					ds = append(ds, d)
				})
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			n := 0
			for _, d := range ds {
				if d.Action == rollout.ActionAdvance {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("two racing runs: %d advanced, want exactly 1: %+v", n, ds)
			}
		} else {
			ds = []rollout.Decision{runRollout(t, f, prom)}
		}
		done := false
		for _, d := range ds {
			switch d.Action {
			case rollout.ActionAdvance:
				advances = append(advances, d)
			case rollout.ActionHalt, rollout.ActionHalted:
				t.Fatalf("the rollout halted: %+v", d)
			case rollout.ActionDone:
				done = true
			}
		}
		if done {
			break
		}
		time.Sleep(time.Second)
	}
	if len(advances) != 2 || advances[0].Next != 2 || advances[1].Next != 3 || advances[0].Commit == "" || advances[1].Commit == "" {
		t.Fatalf("advances %+v: want wave 2 then wave 3, each one commit", advances)
	}
	log := groupLog(t, f)
	if len(log) != 3 || !strings.HasPrefix(log[0], advances[1].Commit) || !strings.HasPrefix(log[1], advances[0].Commit) {
		t.Fatalf("groups/next.yaml history:\n%s\nwant the start and one commit per advance", strings.Join(log, "\n"))
	}
	for _, h := range hosts {
		if h.Booted() != digestOf(v2) {
			t.Errorf("%s boots %s, want v2", h.Name, h.Booted())
		}
	}
}

func dryRun(t *testing.T, f *fleettest.Fleet, prom *promserver.Server) rollout.Decision {
	t.Helper()
	out, errOut, code := cli(t, "rollout", "--repo", f.URL, "--allow-http", "--prometheus", prom.URL(), "--lookback", "10m", "--dry-run", "-o", "json")
	if code != 0 {
		t.Fatalf("bootsync rollout --dry-run: exit %d\n%s", code, errOut)
	}
	var d rollout.Decision
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("rollout -o json: %v\n%s", err, out)
	}
	return d
}

// A bad image fails on the wave-1 host: the first rollout run after
// Prometheus shows it halts the rollout (update.paused in one commit), and
// no host outside wave 1 ever stages the image.
func TestRolloutHaltsOnABadImageInWaveOne(t *testing.T) {
	var bad string
	f, prom, hosts, wave, _ := startRolloutFleet(t, func(f *fleettest.Fleet) string { bad = f.Image("bad", bootcsim.ImageOptions{}, true); return bad })
	for _, h := range hosts {
		h.Sim.MarkBad(t, digestOf(bad))
	}
	var first string
	for _, h := range hosts {
		if wave[h.Name] == 1 {
			first = h.Name
		}
	}
	deadline := time.Now().Add(4 * time.Minute)
	seen := false
	var halt rollout.Decision
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no halt in 4 minutes")
		}
		if !seen {
			st := fleetStatus(t, prom, f.Repo.Dir)
			h, _ := st.Host(first)
			seen = h != nil && h.Kind() == fleetstatus.KindQuarantined
		}
		d := runRollout(t, f, prom)
		if d.Action == rollout.ActionAdvance {
			t.Fatalf("the rollout advanced past a failing wave: %+v", d)
		}
		if d.Action == rollout.ActionHalt {
			halt = d
			break
		}
		if seen {
			t.Fatalf("%s showed as quarantined in Prometheus, yet the next rollout run decided %s: %+v", first, d.Action, d)
		}
		time.Sleep(time.Second)
	}
	if halt.Commit == "" || len(halt.Failed) != 1 || halt.Failed[0].Host != first {
		t.Fatalf("halt %+v: want one commit naming %s", halt, first)
	}
	if d := runRollout(t, f, prom); d.Action != rollout.ActionHalted {
		t.Errorf("after the halt the job decided %s, want halted", d.Action)
	}
	time.Sleep(3 * time.Second) // a few more agent passes on the halted commit
	if log := groupLog(t, f); len(log) != 2 || !strings.HasPrefix(log[0], halt.Commit) {
		t.Errorf("groups/next.yaml history:\n%s\nwant the start and the halt", strings.Join(log, "\n"))
	}
	for _, h := range hosts {
		staged := false
		for _, c := range h.Sim.Calls(t) {
			staged = staged || len(c.Argv) > 0 && c.Argv[0] == "switch" && strings.Contains(strings.Join(c.Argv, " "), digestOf(bad))
		}
		if staged != (wave[h.Name] == 1) {
			t.Errorf("%s (wave %d): staged the bad image: %v", h.Name, wave[h.Name], staged)
		}
	}
}
