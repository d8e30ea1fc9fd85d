package bootc

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a bootc release as printed by `bootc --version`.
type Version struct {
	Major, Minor, Patch int
	// Suffix is anything after the numbers ("-3-g534c76ea" for a git
	// build); it does not take part in comparisons.
	Suffix string
}

// Releases that introduced the flags this package uses (see the bootc
// contract notes, §3.8).
var (
	minFormatVersion  = Version{Major: 0, Minor: 1, Patch: 14}
	minSigPolicy      = Version{Major: 0, Minor: 1, Patch: 5}
	minUpgradeApply   = Version{Major: 0, Minor: 1, Patch: 3}
	minSwitchApply    = Version{Major: 0, Minor: 1, Patch: 16}
	minRollbackApply  = Version{Major: 1, Minor: 1, Patch: 7}
	minSoftReboot     = Version{Major: 1, Minor: 7, Patch: 0}
	minDownloadOnly   = Version{Major: 1, Minor: 12, Patch: 0}
	versionNumberExpr = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.(\d+))?(.*)$`)
)

// ParseVersion reads "bootc 1.16.9", "1.16.9" or a git build such as
// "bootc 1.16.9-3-g534c76ea" (the first line of `bootc --version`).
func ParseVersion(s string) (Version, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	fields := strings.Fields(line)
	if len(fields) == 2 && fields[0] == "bootc" {
		line = fields[1]
	} else if len(fields) != 1 {
		return Version{}, fmt.Errorf("parse bootc version %q: want \"bootc X.Y.Z\"", strings.TrimSpace(s))
	}
	m := versionNumberExpr.FindStringSubmatch(line)
	if m == nil {
		return Version{}, fmt.Errorf("parse bootc version %q: want \"bootc X.Y.Z\"", strings.TrimSpace(s))
	}
	var v Version
	var err error
	if v.Major, err = strconv.Atoi(m[1]); err != nil {
		return Version{}, fmt.Errorf("parse bootc version %q: %w", line, err)
	}
	if v.Minor, err = strconv.Atoi(m[2]); err != nil {
		return Version{}, fmt.Errorf("parse bootc version %q: %w", line, err)
	}
	if m[3] != "" {
		if v.Patch, err = strconv.Atoi(m[3]); err != nil {
			return Version{}, fmt.Errorf("parse bootc version %q: %w", line, err)
		}
	}
	if m[4] != "" && !strings.ContainsAny(m[4][:1], "-+~") {
		return Version{}, fmt.Errorf("parse bootc version %q: unexpected %q after the version number", line, m[4])
	}
	v.Suffix = m[4]
	return v, nil
}

// String renders "X.Y.Z" plus the suffix.
func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Patch, v.Suffix)
}

// Compare returns -1, 0 or +1 as v is older than, the same release as, or
// newer than o. Suffixes are ignored.
func (v Version) Compare(o Version) int {
	for _, d := range [3]int{v.Major - o.Major, v.Minor - o.Minor, v.Patch - o.Patch} {
		switch {
		case d < 0:
			return -1
		case d > 0:
			return 1
		}
	}
	return 0
}

// AtLeast reports whether v is o or newer.
func (v Version) AtLeast(o Version) bool { return v.Compare(o) >= 0 }

// SupportsFormatVersion: `bootc status --format-version` (≥ 0.1.14).
func (v Version) SupportsFormatVersion() bool { return v.AtLeast(minFormatVersion) }

// SupportsSigPolicy: `bootc switch --enforce-container-sigpolicy` (≥ 0.1.5).
func (v Version) SupportsSigPolicy() bool { return v.AtLeast(minSigPolicy) }

// SupportsUpgradeApply: `bootc upgrade --apply` (≥ 0.1.3).
func (v Version) SupportsUpgradeApply() bool { return v.AtLeast(minUpgradeApply) }

// SupportsSwitchApply: `bootc switch --apply` (≥ 0.1.16).
func (v Version) SupportsSwitchApply() bool { return v.AtLeast(minSwitchApply) }

// SupportsRollbackApply: `bootc rollback --apply` (≥ 1.1.7).
func (v Version) SupportsRollbackApply() bool { return v.AtLeast(minRollbackApply) }

// SupportsSoftReboot: `--soft-reboot=auto|required` (≥ 1.7.0; hidden from
// --help until 1.8.0 but accepted).
func (v Version) SupportsSoftReboot() bool { return v.AtLeast(minSoftReboot) }

// SupportsDownloadOnly: `bootc upgrade --download-only` and
// `--from-downloaded` (≥ 1.12.0).
func (v Version) SupportsDownloadOnly() bool { return v.AtLeast(minDownloadOnly) }
