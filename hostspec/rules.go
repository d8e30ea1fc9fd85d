package hostspec

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

// Rules that `bootsync validate` (CI) and the agent (hosts) must apply
// alike: both decode the fleet repository with this package, and the host
// side (apply/etc) uses the same constants and functions where it checks
// the same thing again.

// MaxAccountID is the largest numeric owner or group a managed file can
// have. 4294967295 is (uid_t)-1, which chown(2) reads as "leave unchanged".
const MaxAccountID = 1<<32 - 2

// AccountIDProblem says why a numeric owner or group id cannot be used, or
// returns "".
func AccountIDProblem(id uint64) string {
	if id > MaxAccountID {
		return fmt.Sprintf("id %d is reserved (it means \"unchanged\" to chown)", id)
	}
	return ""
}

// Health-check timing floors: a check is a process, connection or request
// against the host; below these it would spin rather than check.
const (
	MinCheckInterval = 100 * time.Millisecond
	MinCheckTimeout  = 100 * time.Millisecond
)

// specialModeBits are set-user-ID, set-group-ID and sticky.
const specialModeBits = 0o7000

// ModeWarning describes the special bits of a file mode (set-user-ID,
// set-group-ID, sticky), or returns "" when it has none. They are allowed
// (a managed helper may need them) but never silently: validate, plan and
// status say so.
func ModeWarning(m FileMode) string {
	if m&specialModeBits == 0 {
		return ""
	}
	var bits []string
	if m&0o4000 != 0 {
		bits = append(bits, "set-user-ID")
	}
	if m&0o2000 != 0 {
		bits = append(bits, "set-group-ID")
	}
	if m&0o1000 != 0 {
		bits = append(bits, "sticky")
	}
	return fmt.Sprintf("mode %s sets the %s bit(s): the file will run with its owner's or group's rights; make sure that is intended", m, strings.Join(bits, ", "))
}

// hiddenRune reports characters that make text display as something else:
// control characters, format characters (bidirectional overrides and
// isolates such as U+202E, zero-width characters) and line or paragraph
// separators. Names, labels, paths and URLs never need them, and in a PR
// comment or a terminal they can make a path look like another one.
func hiddenRune(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}

// hiddenCharProblem names the first hidden character in s, or returns "".
func hiddenCharProblem(s string) string {
	for _, r := range s {
		if hiddenRune(r) {
			return fmt.Sprintf("%q contains the control or invisible formatting character %U, which makes text display differently from what it is", s, r)
		}
	}
	return ""
}

// transportPrefix matches the transports of containers-image and bootc
// ("docker://", "oci:", "containers-storage:", "ostree-unverified-registry:"):
// a name, a colon, and then anything but a port number.
var transportPrefix = regexp.MustCompile(`^([a-z][a-z0-9-]*):(//)?([^0-9]|$)`)

// errTransportPrefix is an image reference written with a transport.
var errTransportPrefix = errors.New("has the transport prefix")

// ParseImageReference parses an image reference the way the fleet
// repository must write it: the distribution reference grammar in its
// canonical form (registry host, repository, tag and/or digest), and what
// go-containerregistry accepts with strict validation. A transport prefix
// such as docker:// is refused with a message saying so: without this, a
// look-alike like docker://registry.example.com/x:1 would be read as a
// registry named "docker:".
func ParseImageReference(ref string) (name.Reference, error) {
	if m := transportPrefix.FindStringSubmatch(ref); m != nil {
		prefix := m[1] + ":" + m[2]
		return nil, fmt.Errorf("%w %q: write the registry reference itself, like %s (bootsync always pulls from a registry)", errTransportPrefix, prefix, strings.TrimPrefix(ref, prefix))
	}
	if msg := hiddenCharProblem(ref); msg != "" {
		return nil, fmt.Errorf("%s", msg)
	}
	if _, err := reference.ParseNamed(ref); err != nil {
		return nil, fmt.Errorf("does not follow the image reference grammar: %w", err)
	}
	return name.ParseReference(ref, name.StrictValidation)
}

// checkNumericAccount applies AccountIDProblem to a numeric owner or group.
func checkNumericAccount(s string) (string, bool) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return "", false
	}
	if msg := AccountIDProblem(id); msg != "" {
		return fmt.Sprintf("%q: %s", s, msg), true
	}
	return "", true
}
