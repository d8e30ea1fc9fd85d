package fleetstatus

import (
	"html/template"
	"io"
	"strings"
	"time"
)

// kindColours are the page's colours per kind of host.
var kindColours = map[string]string{
	KindOK:           "#2e9e44",
	KindUpdating:     "#2f6fd6",
	KindPaused:       "#8a8f98",
	KindQuarantined:  "#c62828",
	KindFailing:      "#ef8a17",
	KindNotReporting: "#263238",
	KindNeverSeen:    "#d5d8dc",
}

type htmlCell struct {
	Host, Kind, State, Title, Letter string
}

type htmlWave struct {
	Name  string
	Cells []htmlCell
}

type htmlDigest struct {
	Letter, Digest, Refs, Commits string
	Hosts                         int
}

type htmlFailing struct{ Host, Reasons string }

type htmlPage struct {
	Time, Source, Counts string
	Total                int
	Waves                []htmlWave
	Legend               []htmlKind
	Digests              []htmlDigest
	Failing              []htmlFailing
}

type htmlKind struct {
	Kind   string
	Colour template.CSS
	Count  int
}

// letters name digests in the cells; the legend says which is which.
func letter(i int) string {
	const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	if i < len(abc) {
		return abc[i : i+1]
	}
	return abc[i%len(abc):i%len(abc)+1] + strings.Repeat("'", i/len(abc))
}

// WriteHTML writes one self-contained page (no scripts, no external
// assets): every host as a cell, grouped by wave and coloured by state,
// the digests they boot, and the failing hosts with their reasons.
func (f *Fleet) WriteHTML(w io.Writer) error {
	p := htmlPage{Time: f.Time.Format(time.RFC3339), Source: f.Source, Counts: f.counts(), Total: len(f.Hosts)}
	letters := map[string]string{}
	for i, dc := range f.Digests {
		letters[dc.Digest] = letter(i)
		cs := make([]string, len(dc.Commits))
		for j, c := range dc.Commits {
			cs[j] = ShortCommit(c)
		}
		p.Digests = append(p.Digests, htmlDigest{Letter: letter(i), Digest: dc.Digest, Hosts: dc.Hosts, Refs: strings.Join(dc.Refs, ", "), Commits: strings.Join(cs, ", ")})
	}
	n := map[string]int{}
	waves := map[string]*htmlWave{}
	var order []string
	for _, wv := range f.Waves {
		order = append(order, wv.Name)
		waves[wv.Name] = &htmlWave{Name: wv.Name}
	}
	for _, h := range f.Hosts {
		k := h.Kind()
		n[k]++
		title := h.Host + ": " + h.stateText() + "; booted " + ShortDigest(h.Booted.Digest) + " from " + ShortCommit(h.Booted.Commit) +
			"; desired " + ShortDigest(h.Desired.Digest) + " at " + ShortCommit(h.Desired.Commit)
		if rs := h.Reasons(); len(rs) > 0 {
			title += "; " + strings.Join(rs, "; ")
			p.Failing = append(p.Failing, htmlFailing{Host: h.Host, Reasons: strings.Join(rs, "; ")})
		} else if k == KindNotReporting {
			p.Failing = append(p.Failing, htmlFailing{Host: h.Host, Reasons: "not reporting (last pass " + ago(f.Time, h.LastPass) + ")"})
		}
		wv := waves[h.Wave]
		if wv == nil {
			wv = &htmlWave{Name: h.Wave}
			if wv.Name == "" {
				wv.Name = "all hosts"
			}
			waves[h.Wave] = wv
			order = append(order, h.Wave)
		}
		wv.Cells = append(wv.Cells, htmlCell{Host: h.Host, Kind: k, State: h.stateText(), Title: title, Letter: letters[h.Booted.Digest]})
	}
	for _, name := range order {
		if wv := waves[name]; len(wv.Cells) > 0 {
			p.Waves = append(p.Waves, *wv)
		}
	}
	for _, k := range Kinds {
		p.Legend = append(p.Legend, htmlKind{Kind: k, Colour: template.CSS(kindColours[k]), Count: n[k]})
	}
	return pageTemplate.Execute(w, p)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>bootsync fleet status</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1d2329;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.05em;margin:1.2em 0 .4em}
.meta{color:#5b6570;font-size:.9em}
.grid{display:flex;flex-wrap:wrap;gap:6px}
.cell{width:112px;height:54px;border-radius:6px;color:#fff;padding:4px 6px;box-sizing:border-box;font-size:12px;overflow:hidden;position:relative}
.cell .name{font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.cell .state{opacity:.9;font-size:11px}
.cell .digest{position:absolute;right:5px;bottom:3px;font-weight:700;font-size:13px}
{{range .Legend}}.kind-{{.Kind}}{background:{{.Colour}}}
{{end}}.kind-never-reported{color:#1d2329;border:1px dashed #8a8f98}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #d5d8dc;padding:3px 8px;text-align:left}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:middle;margin-right:4px}
.legend span{margin-right:14px}
code{font-size:.95em}
</style></head>
<body>
<h1>bootsync fleet status</h1>
<div class="meta">{{.Total}} host(s): {{.Counts}} — from {{.Source}} at {{.Time}}</div>
<p class="legend" id="legend">{{range .Legend}}<span><i class="swatch kind-{{.Kind}}"></i>{{.Kind}} ({{.Count}})</span>{{end}}</p>
{{range .Waves}}<section class="wave"><h2>{{.Name}} <span class="meta">({{len .Cells}} hosts)</span></h2>
<div class="grid">{{range .Cells}}<div class="cell kind-{{.Kind}}" data-host="{{.Host}}" data-state="{{.Kind}}" title="{{.Title}}"><div class="name">{{.Host}}</div><div class="state">{{.State}}</div><div class="digest">{{.Letter}}</div></div>{{end}}</div>
</section>
{{end}}<h2>Digests</h2>
<table id="digests"><tr><th></th><th>digest</th><th>hosts</th><th>references</th><th>from commits</th></tr>
{{range .Digests}}<tr><td><b>{{.Letter}}</b></td><td><code>{{.Digest}}</code></td><td>{{.Hosts}}</td><td>{{.Refs}}</td><td>{{.Commits}}</td></tr>
{{end}}</table>
<h2>Failing and unreachable hosts</h2>
{{if .Failing}}<ul id="failing">{{range .Failing}}<li data-host="{{.Host}}"><b>{{.Host}}</b>: {{.Reasons}}</li>{{end}}</ul>{{else}}<p id="failing">None.</p>{{end}}
</body></html>
`))
