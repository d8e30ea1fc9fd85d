package reconcile

import (
	"fmt"

	"github.com/bootsync/bootsync/hostspec"
)

// modeWarnings says which files get set-user-ID, set-group-ID or sticky
// bits, as validate does.
func modeWarnings(files []hostspec.EtcFile) []string {
	var out []string
	for _, f := range files {
		if msg := hostspec.ModeWarning(f.Mode); msg != "" && !f.Absent {
			out = append(out, fmt.Sprintf("%s (%s): %s", f.Path, f.Source, msg))
		}
	}
	return out
}
