package hostspec

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// Checks of single values: names, paths, references, times. Each returns
// the problem as a message for users, or "".

// checkName validates a host or group name: it becomes part of file names,
// metrics labels and log lines.
func (d *decoder) checkName(n *yaml.Node, field, s string) bool {
	if msg := checkName(s); msg != "" {
		d.failf(n, field, "%s", msg)
		return false
	}
	return true
}

func checkName(s string) string {
	if len(s) > 253 {
		return fmt.Sprintf("name %q is longer than 253 characters", s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			(i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return fmt.Sprintf("invalid name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", s)
		}
	}
	if s == "" {
		return "name must not be empty"
	}
	return ""
}

// checkMachineID validates metadata.machineID: 32 lowercase hex digits,
// as in /etc/machine-id (machine-id(5)).
func (d *decoder) checkMachineID(n *yaml.Node, field, s string) bool {
	ok := len(s) == 32 && strings.Trim(s, "0123456789abcdef") == "" && strings.Trim(s, "0") != ""
	if !ok {
		d.failf(n, field, "%q is not a machine ID: want the 32 lowercase hexadecimal digits of the machine's /etc/machine-id (systemd-id128 machine-id prints it)", s)
	}
	return ok
}

// parseBucketRange parses "lo-hi" or "n", both within 0..99.
func parseBucketRange(s string) (lo, hi int, msg string) {
	bad := func() (int, int, string) {
		return 0, 0, fmt.Sprintf("invalid bucket range %q: want \"lo-hi\" or \"n\" with 0 <= lo <= hi <= 99", s)
	}
	loText, hiText, isRange := strings.Cut(s, "-")
	if !isRange {
		hiText = loText
	}
	var err1, err2 error
	lo, err1 = strconv.Atoi(strings.TrimSpace(loText))
	hi, err2 = strconv.Atoi(strings.TrimSpace(hiText))
	if err1 != nil || err2 != nil || lo < 0 || hi > 99 || lo > hi {
		return bad()
	}
	return lo, hi, ""
}

// bucketRange decodes a bucket range value, reporting a malformed one; ok
// is false when there is no usable range.
func (d *decoder) bucketRange(v *yaml.Node, f string) (text string, lo, hi int, ok bool) {
	text, ok = d.text(v, f)
	if !ok {
		return "", 0, 0, false
	}
	lo, hi, msg := parseBucketRange(text)
	if msg != "" {
		d.failf(v, f, "%s", msg)
		return "", 0, 0, false
	}
	return text, lo, hi, true
}

// checkRegistryPrefix validates an allowed repository prefix such as
// "registry.example.com/os": a registry host with an optional path, no
// scheme, tag or digest.
func checkRegistryPrefix(s string) string {
	if strings.Contains(s, "://") {
		return fmt.Sprintf("registry prefix %q must not have a scheme: write it like registry.example.com/os", s)
	}
	if strings.ContainsAny(s, "@ \t") {
		return fmt.Sprintf("registry prefix %q must be a registry host and repository path, without tag or digest", s)
	}
	host, repo, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil {
		return fmt.Sprintf("registry prefix %q: invalid registry %q: %v", s, host, err)
	}
	if repo != "" {
		if _, err := name.NewRepository(host+"/"+repo, name.StrictValidation); err != nil {
			return fmt.Sprintf("registry prefix %q: %v", s, err)
		}
	}
	return ""
}

// checkEtcPath validates a target path: normalized, absolute, under /etc
// and not /etc itself (unless it is a directory entry's base).
func checkEtcPath(p string, allowRoot bool) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("path %q must be an absolute path under /etc", p)
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f {
			return fmt.Sprintf("path %q contains control characters", p)
		}
	}
	if msg := hiddenCharProblem(p); msg != "" {
		return "path " + msg
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Sprintf("path %q must not contain ..", p)
		}
	}
	if c := path.Clean(p); c != p {
		return fmt.Sprintf("path %q is not normalized: write %q", p, c)
	}
	if p == "/etc" {
		if allowRoot {
			return ""
		}
		return "path /etc is the directory itself: name a file under /etc"
	}
	if !strings.HasPrefix(p, "/etc/") {
		return fmt.Sprintf("path %q is not under /etc: bootsync only manages files in /etc (the rest of the OS comes from the image)", p)
	}
	return ""
}

// checkFromPath validates a `from:` path syntactically; symbolic links are
// checked against the repository at Load.
func checkFromPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return fmt.Sprintf("from %q is absolute: write a path relative to the repository root, like files/motd", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Sprintf("from %q escapes the repository: .. is not allowed", p)
		}
	}
	if !validRepoPath(p) {
		return fmt.Sprintf("from %q is not a clean relative path: write %q", p, path.Clean(p))
	}
	return ""
}

func validRepoPath(p string) bool {
	if p == "." || p == "" || path.Clean(p) != p || strings.HasPrefix(p, "../") {
		return false
	}
	for _, r := range p {
		if r < ' ' || r == 0x7f || r == '\\' {
			return false
		}
	}
	return true
}

// checkAccount validates an owner or group: a numeric id or a user name.
func checkAccount(s string) string {
	if msg, numeric := checkNumericAccount(s); numeric {
		return msg
	}
	if len(s) > 32 {
		return fmt.Sprintf("%q is not a user or group name (at most 32 characters) or a numeric id", s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' ||
			(i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.')) ||
			(i == len(s)-1 && i > 0 && r == '$')
		if !ok {
			return fmt.Sprintf("%q is not a user or group name or a numeric id", s)
		}
	}
	return ""
}

// checkUnit validates a systemd unit name loosely: it is passed to
// systemctl as one argument, so it must not look like an option.
func checkUnit(u string) string {
	if strings.HasPrefix(u, "-") || strings.ContainsAny(u, " \t\n/") {
		return fmt.Sprintf("invalid systemd unit name %q", u)
	}
	return ""
}

func normalizeDay(s string) string {
	s = strings.ToLower(s)
	for _, wd := range weekdays {
		if s == wd {
			return wd
		}
	}
	for _, full := range []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} {
		if s == full {
			return full[:3]
		}
	}
	return ""
}

func validClock(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	return err1 == nil && err2 == nil && h >= 0 && h < 24 && m >= 0 && m < 60 &&
		s[0] >= '0' && s[0] <= '9' && s[3] >= '0' && s[3] <= '9'
}

// checkDigest validates "algorithm:hex" the way image references do.
func checkDigest(s string) string {
	if _, err := name.NewDigest("example.invalid/x@"+s, name.StrictValidation); err != nil {
		return fmt.Sprintf("invalid digest %q: want sha256:<64 hex digits>", s)
	}
	return ""
}

// zoneCache remembers time.LoadLocation results: loading reads the zone
// database, and a fleet names few zones many times.
var zoneCache sync.Map // name -> string (problem, "" when valid)

func checkTimezone(s string) string {
	if v, ok := zoneCache.Load(s); ok {
		return v.(string)
	}
	msg := ""
	if s == "Local" || s == "" {
		msg = fmt.Sprintf("time zone %q is not allowed: name an IANA zone like Europe/Berlin, or UTC", s)
	} else if _, err := time.LoadLocation(s); err != nil {
		msg = fmt.Sprintf("unknown time zone %q: want an IANA name like Asia/Seoul or UTC (%v)", s, err)
	}
	zoneCache.Store(s, msg)
	return msg
}
