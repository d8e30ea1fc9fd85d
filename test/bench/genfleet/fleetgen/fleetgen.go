// Package fleetgen generates realistic fleet repositories of any size for
// benchmarks and load tests: a fleet.yaml with /etc files (a directory
// tree, inline and file templates, an absent entry), groups selecting by
// labels, host-name globs and buckets at several priorities, and hosts with
// labels, vars and a templated NetworkManager keyfile. The output depends
// only on the Config, so runs are comparable.
package fleetgen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing/fstest"
)

// Config sizes the generated repository.
type Config struct {
	Hosts  int    // number of hosts/*.yaml files
	Groups int    // number of groups/*.yaml files
	Seed   uint64 // the same seed gives the same repository
}

// File is one generated file.
type File struct {
	Data []byte
	Mode fs.FileMode
}

// Repo is a generated repository: slash-separated path -> file.
type Repo map[string]File

var (
	sites = []string{"seoul", "busan", "tokyo", "osaka", "berlin", "paris", "london", "dublin", "virginia", "oregon", "saopaulo", "sydney"}
	roles = []string{"web", "api", "db", "cache", "queue", "edge", "batch", "proxy", "log", "metrics"}
)

// Generate builds the repository described by cfg.
func Generate(cfg Config) (Repo, error) {
	if cfg.Hosts < 0 || cfg.Groups < 0 {
		return nil, errors.New("fleetgen: hosts and groups must not be negative")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x62736e63)) //nolint:gosec // benchmark data, not secrets
	r := Repo{}
	r.add("fleet.yaml", 0o644, fleetYAML)
	r.add("files/common/chrony.conf", 0o644, "pool {{ .Vars.ntp }} iburst\nmakestep 1.0 3\n")
	r.add("files/common/sysctl.d/90-fleet.conf", 0o644, "net.ipv4.tcp_syncookies = 1\nkernel.panic = 10\n")
	r.add("files/common/ssh/sshd_config.d/50-fleet.conf", 0o644, "PasswordAuthentication no\nPermitRootLogin prohibit-password\n")
	r.add("files/common/bootsync/hooks/pre-reboot.sh", 0o755, "#!/bin/sh\nsync\n")
	r.add("files/resolv.conf.tmpl", 0o644, "# managed by bootsync\n{{ range .Vars.dns }}nameserver {{ . }}\n{{ end }}search {{ .Vars.domain }}\n")
	r.add("files/nm/eth0.tmpl", 0o644, nmKeyfile)
	r.add("files/site/issue.tmpl", 0o644, "{{ .Host.Name }} ({{ .Host.Labels.role }}) at {{ .Vars.site }}, bucket {{ .Host.Bucket }}\n")
	for _, role := range roles {
		r.add("files/roles/"+role+"/limits.conf", 0o644, fmt.Sprintf("# %s\n* soft nofile %d\n", role, 1024*(1+len(role))))
	}

	groupNames := make([]string, 0, cfg.Groups)
	for i := range cfg.Groups {
		name, body := group(i, rng)
		groupNames = append(groupNames, name)
		r.add("groups/"+name+".yaml", 0o644, body)
	}
	for i := range cfg.Hosts {
		name, body := host(i, rng)
		r.add("hosts/"+name+".yaml", 0o644, body)
	}
	return r, nil
}

func (r Repo) add(name string, mode fs.FileMode, data string) {
	r[name] = File{Data: []byte(data), Mode: mode}
}

// HostName returns the name of the i-th generated host.
func HostName(i int) string {
	return fmt.Sprintf("%s-%s-%05d", roles[i%len(roles)], sites[(i/len(roles))%len(sites)], i)
}

const header = "apiVersion: bootsync.dev/v1alpha1\n"

const fleetYAML = header + `kind: Fleet
metadata: {name: bench}
spec:
  image: registry.example.com/os/base:stable
  etc:
    - from: files/common
    - path: /etc/motd
      content: "Welcome to {{ .Host.Name }} ({{ .Host.Labels.role }}, {{ .Host.Labels.site }})\n"
      template: true
    - path: /etc/resolv.conf
      from: files/resolv.conf.tmpl
      template: true
      onChange: {restart: [systemd-resolved.service]}
    - path: /etc/cron.d/legacy
      absent: true
  vars:
    ntp: pool.ntp.org
    dns: [10.0.0.53, 10.0.1.53]
    domain: example.com
    site: unknown
  health:
    - {name: sshd, systemd: sshd.service}
    - {name: node-exporter, http: "http://127.0.0.1:9100/metrics", expect: "node_", timeout: 5s}
  update:
    reboot: window
    windows: [{days: [sat, sun], start: "02:00", duration: 3h, timezone: UTC}]
    grace: 5m
policy:
  registries: [registry.example.com/os]
  requireSignatures: true
`

const nmKeyfile = `[connection]
id=eth0
type=ethernet
interface-name=eth0

[ipv4]
method=manual
address1={{ .Vars.ip }}/{{ .Vars.prefix }},{{ .Vars.gateway }}
dns={{ range $i, $d := .Vars.dns }}{{ if $i }};{{ end }}{{ $d }}{{ end }}
dns-search={{ .Vars.domain }}

[ipv6]
method=disabled
`

// group returns the i-th group: site groups, role groups, bucket rings and
// host-name glob groups in turn, at various priorities.
func group(i int, rng *rand.Rand) (string, string) {
	var b strings.Builder
	b.WriteString(header + "kind: Group\n")
	switch i % 4 {
	case 0: // site
		site := sites[(i/4)%len(sites)]
		name := fmt.Sprintf("site-%s-%d", site, i)
		fmt.Fprintf(&b, "metadata: {name: %s}\nselector: {labels: {site: %s}}\npriority: %d\n", name, site, 10)
		fmt.Fprintf(&b, "spec:\n  vars:\n    site: %s\n    ntp: ntp.%s.example.com\n    dns: [10.%d.0.53, 10.%d.1.53]\n", site, site, i, i)
		fmt.Fprintf(&b, "  etc:\n    - path: /etc/issue\n      from: files/site/issue.tmpl\n      template: true\n")
		fmt.Fprintf(&b, "  update:\n    windows: [{days: [%s], start: \"%02d:00\", duration: 2h, timezone: Asia/Seoul}]\n", []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}[i%7], rng.IntN(5))
		return name, b.String()
	case 1: // role
		role := roles[(i/4)%len(roles)]
		name := fmt.Sprintf("role-%s-%d", role, i)
		fmt.Fprintf(&b, "metadata: {name: %s}\nselector: {labels: {role: %s}}\npriority: %d\n", name, role, 20)
		fmt.Fprintf(&b, "spec:\n  etc:\n    - path: /etc/security/limits.d/50-%s.conf\n      from: files/roles/%s/limits.conf\n      mode: \"0640\"\n", role, role)
		fmt.Fprintf(&b, "  health:\n    - {name: %s, systemd: %s.service, timeout: %ds}\n    - {name: node-exporter, retries: %d}\n", role, role, 5+rng.IntN(20), 1+rng.IntN(5))
		fmt.Fprintf(&b, "  vars:\n    role_limits: {nofile: %d, nproc: %d}\n", 4096*(1+rng.IntN(8)), 1024*(1+rng.IntN(8)))
		return name, b.String()
	case 2: // ring by bucket
		lo := (i * 7) % 90
		name := fmt.Sprintf("ring-%d", i)
		fmt.Fprintf(&b, "metadata: {name: %s}\nselector: {bucket: \"%d-%d\"}\npriority: %d\n", name, lo, lo+9, 30)
		fmt.Fprintf(&b, "spec:\n  image: registry.example.com/os/base:ring-%d\n  update: {reboot: immediate, grace: %dm}\n", i, 5+rng.IntN(10))
		return name, b.String()
	default: // host-name globs
		role := roles[(i/4)%len(roles)]
		name := fmt.Sprintf("glob-%s-%d", role, i)
		fmt.Fprintf(&b, "metadata: {name: %s}\nselector: {hosts: [\"%s-*-0*\", \"%s-*-1*\"]}\npriority: %d\n", name, role, role, rng.IntN(40))
		fmt.Fprintf(&b, "spec:\n  vars: {glob_%d: true}\n  etc:\n    - path: /etc/%s.d/glob-%d.conf\n      content: \"group %s\\n\"\n", i, role, i, name)
		return name, b.String()
	}
}

func host(i int, rng *rand.Rand) (string, string) {
	name := HostName(i)
	role := roles[i%len(roles)]
	site := sites[(i/len(roles))%len(sites)]
	var b strings.Builder
	b.WriteString(header + "kind: Host\n")
	fmt.Fprintf(&b, "metadata:\n  name: %s\n  labels: {role: %s, site: %s, rack: r%02d}\n", name, role, site, rng.IntN(40))
	fmt.Fprintf(&b, "spec:\n  vars:\n    ip: 10.%d.%d.%d\n    prefix: 16\n    gateway: 10.%d.0.1\n", (i>>16)&0xff, (i>>8)&0xff, i&0xff, (i>>16)&0xff)
	b.WriteString("  etc:\n    - path: /etc/NetworkManager/system-connections/eth0.nmconnection\n      from: files/nm/eth0.tmpl\n      template: true\n      mode: \"0600\"\n")
	if rng.IntN(10) == 0 {
		fmt.Fprintf(&b, "    - path: /etc/hostname-note\n      content: \"rack {{ .Host.Labels.rack }}\\n\"\n      template: true\n")
	}
	if rng.IntN(20) == 0 {
		b.WriteString("  update: {paused: true}\n")
	}
	return name, b.String()
}

// MapFS returns the repository as an in-memory file system.
func (r Repo) MapFS() fstest.MapFS {
	m := make(fstest.MapFS, len(r))
	for name, f := range r {
		m[name] = &fstest.MapFile{Data: f.Data, Mode: f.Mode}
	}
	return m
}

// WriteDir writes the repository under dir, which must be empty or absent.
func (r Repo) WriteDir(dir string) error {
	names := make([]string, 0, len(r))
	for name := range r {
		names = append(names, name)
	}
	slices.Sort(names)
	made := map[string]bool{}
	for _, name := range names {
		f := r[name]
		p := filepath.Join(dir, filepath.FromSlash(name))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("write fleet repository: %w", err)
			}
			made[d] = true
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write fleet repository: %w", err)
		}
		// WriteFile's mode is filtered by the umask; set it exactly.
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("write fleet repository: %w", err)
		}
	}
	return nil
}

// CommitGit makes dir a Git repository with one commit of everything in
// it, using the git CLI with a fixed identity and date so that the commit
// id depends only on the content.
func CommitGit(ctx context.Context, dir string) error {
	env := append(os.Environ(),
		"GIT_AUTHOR_NAME=fleetgen", "GIT_AUTHOR_EMAIL=fleetgen@example.com",
		"GIT_COMMITTER_NAME=fleetgen", "GIT_COMMITTER_EMAIL=fleetgen@example.com",
		"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		// No automatic gc: it detaches and repacks while the caller reads.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=gc.auto", "GIT_CONFIG_VALUE_0=0")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"commit", "-q", "-m", "Generated fleet"},
		{"gc", "-q"}, // packed, as a clone would be
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, out)
		}
	}
	return nil
}
