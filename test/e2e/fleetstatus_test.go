package e2e

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bootsync/bootsync/fleetstatus"
	"github.com/bootsync/bootsync/hostspec/fleetdiff"
	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/test/bootcsim"
	"github.com/bootsync/bootsync/test/fleettest"
	"github.com/bootsync/bootsync/test/headless"
	"github.com/bootsync/bootsync/test/promserver"
)

// cli runs the bootsync binary as an operator or CI would.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bootsyncBin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// fleetStatus runs `bootsync fleet status -o json`. Every command here
// passes --lookback 10m: the default (24h) reads history at one-minute
// steps, coarser than this test's agents live.
func fleetStatus(t *testing.T, prom *promserver.Server, repoDir string, extra ...string) *fleetstatus.Fleet {
	t.Helper()
	args := append([]string{"fleet", "status", "--prometheus", prom.URL(), "--repo", repoDir, "--rev", "HEAD", "--lookback", "10m", "-o", "json"}, extra...)
	out, errOut, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("fleet status: exit %d\n%s", code, errOut)
	}
	var f fleetstatus.Fleet
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("fleet status -o json: %v\n%s", err, out)
	}
	return &f
}

// waitStatus polls fleet status until cond holds (at most 3 minutes).
func waitStatus(t *testing.T, what string, prom *promserver.Server, repoDir string, cond func(*fleetstatus.Fleet) bool) *fleetstatus.Fleet {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		f := fleetStatus(t, prom, repoDir)
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			out, _ := json.MarshalIndent(f, "", "  ")
			t.Fatalf("timed out waiting for %s; last fleet status:\n%s", what, out)
		}
		time.Sleep(time.Second)
	}
}

// Ten simulated hosts run the real agent; Debian's Prometheus scrapes
// them. fleet status shows every host's booted digest and the commit it
// came from, a quarantined host, and a host whose agent stopped; diff
// --status-from flags them in a PR's diff; the HTML page opens in headless
// Chromium with every host and its state.
func TestFleetStatusFromPrometheus(t *testing.T) {
	sf, st := newStatusFleet(t)
	for _, h := range st.Hosts {
		if h.Booted.Digest != digestOf(sf.v1) || h.Booted.Commit != sf.c1 {
			t.Errorf("%s: booted %s from %s, want v1 %s from %s", h.Host, h.Booted.Digest, h.Booted.Commit, digestOf(sf.v1), sf.c1)
		}
		if want := wantKind(h.Host); h.Kind() != want || !h.Declared {
			t.Errorf("%s: kind %s (declared %v), want %s", h.Host, h.Kind(), h.Declared, want)
		}
	}
	if w5, _ := st.Host("web-05"); len(w5.Quarantined) != 1 || w5.Quarantined[0].Digest != digestOf(sf.bad) || w5.Quarantined[0].Check != "simulated-os" || w5.Desired.Digest != digestOf(sf.bad) {
		t.Errorf("web-05: quarantined %+v desired %+v, want the bad image quarantined by check simulated-os", w5.Quarantined, w5.Desired)
	}
	if len(st.Digests) != 1 || st.Digests[0].Digest != digestOf(sf.v1) || st.Digests[0].Hosts != 10 {
		t.Errorf("digest summary %+v: want all 10 hosts on v1", st.Digests)
	}

	t.Run("table and filters", sf.checkTable)
	t.Run("diff --status-from", sf.checkDiff)
	t.Run("grafana dashboard", func(t *testing.T) { checkGrafanaDashboard(t, sf.prom) })
	t.Run("html in headless chromium", sf.checkHTML)
}

// statusFleet is the fleet TestFleetStatusFromPrometheus looks at: ten
// hosts whose agents Prometheus scrapes, all booted on v1 from c1, web-05
// asked for the bad image and quarantined it, web-09's agent stopped.
type statusFleet struct {
	prom        *promserver.Server
	f           *fleettest.Fleet
	v1, v2, bad string // image references
	c1          string // the commit every host booted from
	hosts       []*fleettest.Host
	repoDir     string
}

// wantKind is what fleet status must say of each of statusFleet's hosts.
func wantKind(host string) string {
	switch host {
	case "web-05":
		return fleetstatus.KindQuarantined
	case "web-09":
		return fleetstatus.KindNotReporting
	}
	return fleetstatus.KindOK
}

// newStatusFleet sets statusFleet up, step by step as an operator would
// see it, and returns the fleet status at the end.
func newStatusFleet(t *testing.T) (*statusFleet, *fleetstatus.Fleet) {
	sf := &statusFleet{prom: promserver.Start(t, time.Second), f: newFleet(t)}
	prom, f := sf.prom, sf.f
	sf.v1 = f.Image("v1", bootcsim.ImageOptions{}, true)
	sf.v2 = f.Image("v2", bootcsim.ImageOptions{}, true)
	sf.bad = f.Image("bad", bootcsim.ImageOptions{}, true)
	canary := "apiVersion: bootsync.dev/v1alpha1\nkind: Group\nmetadata: {name: canary}\nselector: {bucket: \"0-49\"}\nspec:\n  vars: {ring: canary}\n"
	files := map[string]string{"fleet.yaml": f.FleetYAML(f.TagRef("v1"), ""), "groups/canary.yaml": canary}
	for i := range 10 {
		name := fmt.Sprintf("web-%02d", i)
		files["hosts/"+name+".yaml"] = hostYAML(name, "")
	}
	sf.c1 = f.Commit("v1 everywhere, ten hosts declared", files)

	agents := map[string]*fleettest.Agent{}
	for i := range 10 {
		addr := freeAddr(t)
		h := f.NewHost(fmt.Sprintf("web-%02d", i), sf.v1, hostOptions{Metrics: addr})
		prom.AddTargets(addr)
		sf.hosts = append(sf.hosts, h)
		agents[h.Name] = h.StartAgent()
	}
	sf.repoDir = f.Repo.Dir
	waitStatus(t, "every host converged on v1 at "+sf.c1[:12], prom, sf.repoDir, func(fs *fleetstatus.Fleet) bool {
		return len(fs.Hosts) == 10 && !slices.ContainsFunc(fs.Hosts, func(h fleetstatus.Host) bool {
			return !h.Reporting || h.State != "converged" || h.Booted.Commit != sf.c1
		})
	})

	// web-05 gets an image that fails its health check: it rolls back by
	// itself and quarantines it.
	sf.hosts[5].Sim.MarkBad(t, digestOf(sf.bad))
	c2 := f.Commit("web-05 tries the bad image", map[string]string{"hosts/web-05.yaml": hostYAML("web-05", "spec:\n  image: "+sf.bad+"\n")})
	waitStatus(t, "web-05 quarantined, every host at "+c2[:12], prom, sf.repoDir, func(fs *fleetstatus.Fleet) bool {
		h, _ := fs.Host("web-05")
		return h != nil && h.Kind() == fleetstatus.KindQuarantined && !slices.ContainsFunc(fs.Hosts, func(h fleetstatus.Host) bool {
			return h.Desired.Commit != c2
		})
	})
	// web-09's agent stops: it shows as not reporting, with its last report.
	agents["web-09"].Stop()
	return sf, waitStatus(t, "web-09 not reporting", prom, sf.repoDir, func(fs *fleetstatus.Fleet) bool {
		h, _ := fs.Host("web-09")
		return h != nil && !h.Reporting
	})
}

// checkTable reads the fleet status as a table, filtered, and in Markdown.
func (sf *statusFleet) checkTable(t *testing.T) {
	out, errOut, code := cli(t, "fleet", "status", "--prometheus", sf.prom.URL(), "--repo", sf.repoDir, "--rev", "HEAD", "--lookback", "10m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^web-00 +` + regexp.QuoteMeta(fleetstatus.ShortDigest(digestOf(sf.v1))) + ` +` + sf.c1[:12] + ` .* converged `),
		regexp.MustCompile(`(?m)^web-05 .* quarantined .*` + regexp.QuoteMeta(fleetstatus.ShortDigest(digestOf(sf.bad)))),
		regexp.MustCompile(`(?m)^web-09 .* NOT REPORTING `),
		regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(fleetstatus.ShortDigest(digestOf(sf.v1))) + `  10 host\(s\)  ` + regexp.QuoteMeta(sf.f.TagRef("v1")) + `  from ` + sf.c1[:12]),
		regexp.MustCompile(`(?m)^web-05: quarantined .*health check simulated-os failed`),
	} {
		if !want.MatchString(out) {
			t.Errorf("table lacks %s:\n%s", want, out)
		}
	}
	names := func(extra ...string) []string {
		var out []string
		for _, h := range fleetStatus(t, sf.prom, sf.repoDir, extra...).Hosts {
			out = append(out, h.Host)
		}
		return out
	}
	if got := names("--failing"); !slices.Equal(got, []string{"web-05", "web-09"}) {
		t.Errorf("--failing: %v, want web-05 and web-09", got)
	}
	if got := names("--behind"); !slices.Equal(got, []string{"web-05", "web-09"}) {
		t.Errorf("--behind: %v, want web-05 (on v1, asked for the bad image) and web-09 (not reporting)", got)
	}
	if got := names("--host", "web-0[0-2]"); !slices.Equal(got, []string{"web-00", "web-01", "web-02"}) {
		t.Errorf("--host: %v", got)
	}
	md, _, _ := cli(t, "fleet", "status", "--prometheus", sf.prom.URL(), "--lookback", "10m", "-o", "markdown")
	if !strings.Contains(md, "| web-05 |") || !strings.Contains(md, "- **web-05**: quarantined") || !strings.Contains(md, "| `"+fleetstatus.ShortDigest(digestOf(sf.v1))+"` | 10 |") {
		t.Errorf("markdown:\n%s", md)
	}
}

// checkDiff diffs a pull request against what the hosts run now.
func (sf *statusFleet) checkDiff(t *testing.T) {
	// A PR (uncommitted, as CI checks it out): v2 for the fleet,
	// web-05 moves to v2, web-04 pins the digest it already runs.
	sf.f.Repo.Write(map[string]string{
		"fleet.yaml":        sf.f.FleetYAML(sf.f.TagRef("v2"), ""),
		"hosts/web-05.yaml": hostYAML("web-05", "spec:\n  image: "+sf.v2+"\n"),
		"hosts/web-04.yaml": hostYAML("web-04", "spec:\n  image: "+sf.v1+"\n"),
	})
	out, errOut, code := cli(t, "diff", "--repo", sf.repoDir, "--base", "HEAD", "--status-from", sf.prom.URL(), "--lookback", "10m", "-o", "json")
	if code != 0 {
		t.Fatalf("diff: exit %d\n%s", code, errOut)
	}
	var rep fleetdiff.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Status == nil {
		t.Fatalf("diff -o json: %v\n%s", err, out)
	}
	for host, want := range map[string]string{"web-05": fleetdiff.FlagQuarantined, "web-09": fleetdiff.FlagUnreachable, "web-04": fleetdiff.FlagOnTarget} {
		if n := rep.Status.Hosts[host]; !slices.Contains(n.Flags, want) || n.Booted != digestOf(sf.v1) || n.BootedCommit != sf.c1 {
			t.Errorf("%s: %+v, want flag %s, runs v1 from %s", host, n, want, sf.c1[:12])
		}
	}
	if n := rep.Status.Hosts["web-01"]; len(n.Flags) != 0 || n.Booted != digestOf(sf.v1) || n.State != "converged" {
		t.Errorf("web-01: %+v, want no flag, converged on v1", n)
	}
	text, _, _ := cli(t, "diff", "--repo", sf.repoDir, "--base", "HEAD", "--status-from", sf.prom.URL(), "--lookback", "10m", "--host", "web-05")
	if !strings.Contains(text, "  now: runs "+fleetstatus.ShortDigest(digestOf(sf.v1))+" (from "+sf.c1[:12]+"), quarantined [quarantined]: quarantined "+fleetstatus.ShortDigest(digestOf(sf.bad))) {
		t.Errorf("text diff lacks web-05's status:\n%s", text)
	}
	md, _, _ := cli(t, "diff", "--repo", sf.repoDir, "--base", "HEAD", "--status-from", sf.prom.URL(), "--lookback", "10m", "-o", "markdown")
	for _, want := range []string{"**What the changed hosts run now**", "10 host(s) run `" + fleetstatus.ShortDigest(digestOf(sf.v1)) + "`",
		"⚠️ **1 quarantined**: `web-05` (quarantined", "⚠️ **1 unreachable**: `web-09`", "**1 on-target**: `web-04`"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown diff lacks %q:\n%s", want, md)
		}
	}
}

// checkHTML opens the HTML page in headless Chromium: one cell a host, in
// its state, and no external assets.
func (sf *statusFleet) checkHTML(t *testing.T) {
	chromium := headless.Require(t)
	out, errOut, code := cli(t, "fleet", "status", "--prometheus", sf.prom.URL(), "--repo", sf.repoDir, "--rev", "HEAD", "--lookback", "10m", "-o", "html")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "http://") && strings.Contains(out, "<link") || strings.Contains(out, "<script") || strings.Contains(out, "src=") {
		t.Fatalf("the page loads external assets or scripts:\n%s", out)
	}
	dir := os.Getenv("BOOTSYNC_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	page := filepath.Join(dir, "fleet-status.html")
	if err := os.WriteFile(page, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := headless.DumpDOM(t, chromium, page)
	cells := regexp.MustCompile(`<div class="cell kind-[a-z-]+" data-host="([^"]+)" data-state="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	got := map[string]string{}
	for _, c := range cells {
		got[c[1]] = c[2]
	}
	for _, h := range sf.hosts {
		if want := wantKind(h.Name); got[h.Name] != want {
			t.Errorf("DOM: %s is %q, want %q", h.Name, got[h.Name], want)
		}
	}
	if len(cells) != 10 {
		t.Errorf("DOM has %d host cells, want 10", len(cells))
	}
	for _, want := range []string{"group canary: buckets 0-49", "other hosts", digestOf(sf.v1), `<li data-host="web-05"><b>web-05</b>: quarantined`, `<li data-host="web-09"><b>web-09</b>: not reporting`} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	shot := filepath.Join(dir, "fleet-status.png")
	headless.Screenshot(t, chromium, page, shot, 1200, 900)
	checkScreenshot(t, shot)
	t.Logf("screenshot: %s", shot)
}

// checkScreenshot fails on a blank picture: the page must show cells in
// the state colours.
func checkScreenshot(t *testing.T, file string) {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The green of converged hosts and the red of the quarantined one.
	found := map[string]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			switch [3]uint32{r >> 8, g >> 8, bl >> 8} {
			case [3]uint32{0x2e, 0x9e, 0x44}:
				found["ok"] = true
			case [3]uint32{0xc6, 0x28, 0x28}:
				found["quarantined"] = true
			}
		}
	}
	if !found["ok"] || !found["quarantined"] {
		t.Errorf("screenshot %s lacks the state colours: %v", file, found)
	}
}

// checkGrafanaDashboard loads examples/grafana's dashboard as Grafana
// dashboard JSON and checks that every query parses in Prometheus and names
// only metrics the running agents export.
func checkGrafanaDashboard(t *testing.T, prom *promserver.Server) {
	data, err := os.ReadFile("../../examples/grafana/bootsync-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int                       `json:"id"`
			Type    string                    `json:"type"`
			Title   string                    `json:"title"`
			GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 30 || len(dash.Panels) == 0 {
		t.Fatalf("not a dashboard: uid %q title %q schemaVersion %d, %d panels", dash.UID, dash.Title, dash.SchemaVersion, len(dash.Panels))
	}
	exported := exportedMetrics(t, prom)
	ids := map[int]bool{}
	vars := strings.NewReplacer("$instance", ".*", "$__rate_interval", "1m")
	for _, p := range dash.Panels {
		if p.ID == 0 || ids[p.ID] || p.Type == "" || p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: want a unique id, a type, a title, a gridPos and targets", p.ID, p.Title)
		}
		ids[p.ID] = true
		for _, q := range p.Targets {
			for _, m := range regexp.MustCompile(`bootsync_[a-z_]+`).FindAllString(q.Expr, -1) {
				if !exported[histogramBase(m)] {
					t.Errorf("panel %q queries %s, which the agents do not export (they export %v)", p.Title, m, exported)
				}
			}
			if q.RefID == "" {
				t.Errorf("panel %q: a target without refId", p.Title)
			}
			if _, err := prom.Query(t.Context(), vars.Replace(q.Expr)); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
		}
	}
}

// exportedMetrics returns the metrics the agent declares (a labelled
// counter has no series before its first event), and checks those
// Prometheus scraped from the running agents are among them.
func exportedMetrics(t *testing.T, prom *promserver.Server) map[string]bool {
	t.Helper()
	exported := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	go func() { reconcile.NewMetrics().Registry.Describe(descs); close(descs) }()
	for d := range descs {
		if m := regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	res, err := prom.Query(t.Context(), `count by (__name__) ({__name__=~"bootsync_.+"})`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 10 {
		t.Fatalf("Prometheus has %d bootsync metrics from the agents", len(res))
	}
	for _, r := range res {
		var s struct {
			Metric map[string]string `json:"metric"`
		}
		_ = json.Unmarshal(r, &s)
		if name := histogramBase(s.Metric["__name__"]); !exported[name] {
			t.Errorf("the agents export %s, which reconcile.NewMetrics does not declare", name)
		}
	}
	return exported
}

// histogramBase is a histogram's name for one of its series' names.
func histogramBase(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			return base
		}
	}
	return name
}
