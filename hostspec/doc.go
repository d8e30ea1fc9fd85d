// Package hostspec reads a fleet repository and resolves, for one host, the
// desired state the agent converges to: an OS image, files under /etc,
// health checks, an update policy and the fleet's image policy.
//
// # Repository layout
//
//	fleet.yaml        kind: Fleet  (required) defaults for every host, fleet-wide policy
//	groups/**/*.yaml  kind: Group  a selector plus overrides
//	hosts/**/*.yaml   kind: Host   one host: its labels and its own overrides
//	files/…           sources and templates that etc: entries refer to
//	bootsync.lock     kind: Lock   (optional) tag -> digest pins written by `bootsync lock`
//
// groups/ and hosts/ are searched recursively; only *.yaml files are read
// (a *.yml file is an error rather than silently ignored). Each file holds
// exactly one YAML document, which starts with
//
//	apiVersion: bootsync.dev/v1alpha1
//	kind: Fleet | Group | Host | Lock
//
// A host file's metadata.name must equal its base name (hosts/web-01.yaml
// declares web-01); host and group names are unique. Host and group names
// use letters, digits, '-', '_' and '.'.
//
// # Documents
//
//	# fleet.yaml
//	apiVersion: bootsync.dev/v1alpha1
//	kind: Fleet
//	metadata: {name: prod}                 # optional
//	spec: {…}                              # see Spec below
//	policy:                                # only here: tightens, never loosens, host-local trust
//	  registries: [registry.example.com/os]  # allowed repository prefixes
//	  requireSignatures: true
//	limits:                                # only here; see Limits below (defaults shown)
//	  fileSize: 4Mi                        # a file under files/, and a rendered template
//	  documentSize: 1Mi                    # a YAML document (fleet.yaml, groups/, hosts/, bootsync.lock)
//	  repoSize: 128Mi                      # every file read from the repository, together
//	  templateSteps: 1000000               # the work of one render
//	  templateMemory: 64Mi                 # bytes template functions may build in one render
//
//	# groups/canary.yaml
//	apiVersion: bootsync.dev/v1alpha1
//	kind: Group
//	metadata: {name: canary}
//	selector: {hosts: ["edge-0*"], labels: {ring: "0"}, bucket: "0-9"}
//	priority: 10                           # default 0
//	spec: {…}
//
//	# hosts/web-01.yaml
//	apiVersion: bootsync.dev/v1alpha1
//	kind: Host
//	metadata: {name: web-01, labels: {role: web, site: seoul}}
//	spec: {…}
//
// A selector needs at least one part, and every part given must match:
// hosts is a list of path.Match globs of which any may match the host name;
// labels must all be equal; bucket "lo-hi" (or "n") matches hosts whose
// Bucket is in the range (0..99), for percentage rollouts. Use
// hosts: ["*"] for a group that applies to every host.
//
// # Spec
//
//	spec:
//	  image: registry.example.com/os/base:stable   # or …@sha256:…; fully qualified
//	  vars: {ntp: pool.ntp.org, net: {dns: 10.0.0.1}}
//	  etc:
//	    - from: files/common            # a directory: its tree is copied under /etc,
//	                                    # or under path: when given
//	    - path: /etc/motd               # inline content
//	      content: "Welcome to {{ .Host.Name }}\n"
//	      template: true
//	      mode: "0644"                  # a quoted octal string
//	      owner: root                   # name or numeric id; default root
//	      group: root
//	    - path: /etc/chrony.conf        # content from a file of the repository
//	      from: files/chrony.conf.tmpl
//	      template: true
//	      onChange: {restart: [chronyd.service], reload: [], reboot: false}
//	    - path: /etc/old.conf
//	      absent: true                  # remove this path on the host
//	  health:
//	    - {name: sshd, systemd: sshd.service}
//	    - {name: api, http: "http://127.0.0.1:8080/healthz", expect: ok, timeout: 5s, interval: 10s, retries: 3, required: true}
//	    - {name: db, tcp: "127.0.0.1:5432"}
//	    - {name: custom, command: [/usr/bin/check, --fast]}
//	    - {name: old, disabled: true}   # switch off an inherited check
//	  update:
//	    reboot: window                  # immediate (default) | window | fleetlock | window+fleetlock | manual
//	    windows: [{days: [sat, sun], start: "02:00", duration: 3h, timezone: Asia/Seoul}]
//	    fleetlock: {url: "https://fleetlock.example.com", group: default}
//	    paused: false
//	    grace: 5m                       # default 5m
//	    softReboot: false
//	    deferRebootWhileUsers: false
//	    maxDeferral: 24h                # default 24h
//
// /etc targets must be normalized absolute paths strictly under /etc,
// without "..". A `from:` path is relative to the repository root; it may
// not be absolute, contain "..", or pass through a symbolic link that
// points outside the repository (links inside the repository are
// followed; a link to a directory inside a `from:` tree is refused). A
// directory's files get mode 0755 when executable in the repository and
// 0644 otherwise, unless the entry sets mode. Within one file, an entry
// naming a path explicitly wins over a file expanded from a directory;
// naming the same path twice is an error. A resolved path may not lie
// inside another resolved path (a file cannot also be a directory).
// Submodules (and nested repositories in a working tree) are refused
// wherever they are read, never skipped.
//
// Names, labels, paths, URLs and other single-line text may not contain
// control characters or invisible formatting characters (bidirectional
// overrides such as U+202E, zero-width characters): they would make a PR
// comment or a terminal show something other than what is there. Image
// references follow the distribution reference grammar in canonical form
// (ParseImageReference); a transport prefix such as docker:// is refused.
// A numeric owner or group is at most MaxAccountID (4294967295 means
// "unchanged" to chown). Modes with set-user-ID, set-group-ID or sticky
// bits are allowed and reported by Repo.Warnings. The agent refuses
// entries for the paths it reserves (apply/etc's ReservedPaths) unless the
// host allows them; `bootsync validate` reports them.
//
// Health checks have exactly one type (systemd, http, tcp or command; a
// command's program is an absolute path, run without a shell). Defaults:
// timeout 10s, interval 10s, retries 3, required true; timeout and
// interval are at least 100ms (MinCheckTimeout, MinCheckInterval). expect
// applies to http checks only.
//
// Windows: days are mon..sun (full names and any case accepted; all seven
// when omitted), start is HH:MM on a 24-hour clock, duration is positive
// and at most a week, timezone is an IANA name (default UTC). reboot:
// window needs windows and reboot: fleetlock needs fleetlock.url, after
// merging.
//
// Durations are Go durations ("30s", "5m", "1h30m"). YAML anchors, aliases
// and merge keys (<<) are not supported.
//
// # Merging
//
// Layers apply from lowest to highest: fleet.yaml, then every group whose
// selector matches the host in ascending priority (ties by name), then
// the host's own file. A higher layer wins:
//
//   - image and other scalars, and lists (windows, registries, a command's
//     argv, onChange units) are replaced whole;
//   - vars merge key by key, recursively through nested mappings (a
//     mapping replaced by a scalar or list is replaced whole);
//   - update merges key by key, and fleetlock key by key within it;
//   - etc entries merge by target path, after directories are expanded
//     into files: a higher layer's entry for a path replaces the lower one
//     entirely, and absent: true removes it (the resolved spec then holds
//     the path with Absent set, so the agent deletes it);
//   - health checks merge by name, field by field; setting a type replaces
//     the check's type (expect is dropped unless the new type is http);
//     disabled: true drops the check from the result.
//
// A host's labels are those of its file plus the extra labels the agent
// passes from the host's local configuration; the file wins on conflict.
// A host without a file gets the fleet and the groups that select its
// name, labels and bucket.
//
// Image.Digest comes from the reference when it is digest-pinned, else
// from bootsync.lock when the lock has that exact reference (Locked).
//
// # Templates
//
// Entries with template: true are Go text/template templates, rendered for
// each host with missingkey=error. They see:
//
//	.Host.Name     the host name
//	.Host.Labels   the host's labels (map)
//	.Host.Bucket   Bucket(.Host.Name)
//	.Vars          the merged vars
//
// index works as in text/template, except that a missing map key is an
// error naming the key, as .Vars.m.missing is.
//
// A template that reads a missing key, fails to parse or fails to execute
// is an error naming the template's source file and line (the `from:`
// file, or the YAML file for inline content) and, when rendering fails,
// the host. EtcFile.SHA256 is the hex SHA-256 of the final content.
//
// # Limits
//
// A commit cannot make loading or rendering cost more than its limits, so
// a careless or hostile change fails with a clear error (Error.Limit names
// the limit; LimitExceeded) instead of exhausting the memory or time of
// every host's agent and of the CI runner that diffs it. Sizes are checked
// before a file is read. A template's work is counted in steps (the nodes
// it executes; a range is charged for all its iterations before the first
// one, so {{range 1000000000}} fails at once; a {{template}} call for the
// size of the called template) and its memory in the bytes that printf,
// print, println, html, js and urlquery produce (checked before they
// build a string); its output is at most fileSize. Counting rather than
// timing makes the verdict the same in CI and on every host.
//
// fleet.yaml's top-level limits: may lower or raise the defaults
// (DefaultLimits), but never beyond the ceilings of the machine that loads
// the repository (WithLimitCeilings: the host configuration's limits:, the
// --limit flag; DefaultCeilings otherwise): a larger value is capped, and
// a problem caused by the cap says so. Sizes are bytes or take Ki, Mi, Gi.
//
// # Provenance
//
// Every resolved value records the file, line and column of the YAML node
// that set it, in HostSpec.Provenance and in Image.Source, EtcFile.Source
// and HealthCheck.Source. The keys are:
//
//	image, image.digest (when from bootsync.lock)
//	vars.<key>, vars.<key>.<nested key>…
//	update.<key>, update.fleetlock.url, update.fleetlock.group
//	policy.registries, policy.requireSignatures
//	etc[<path>]
//	health[<name>] (where the check's type was set), health[<name>].<field>
//
// Values that come from a default have an empty Source, which String
// renders as "(default)". EtcFile.Source.From names the repository file
// the content came from.
//
// # Errors
//
// Load decodes strictly: unknown fields (with a suggestion for typos),
// wrong types, duplicate keys, invalid values and every rule above are
// reported as an ErrorList of *Error, each naming file:line:column and the
// field path ("hosts/web-01.yaml:7:5: spec.etc[1].mdoe: unknown field
// \"mdoe\" (did you mean \"mode\"?)"). Every problem in every file is
// reported, sorted by file and line. Problems that only show when a host's
// layers come together are returned by Resolve, and for every declared
// host by Validate, with Error.Host set.
//
// A Repo is immutable and safe for concurrent use. HostSpecs share the
// content of files that are not rendered per host; treat EtcFile.Content
// as read-only.
package hostspec
