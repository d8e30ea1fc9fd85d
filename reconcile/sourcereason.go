package reconcile

import (
	"errors"

	"github.com/bootsync/bootsync/gitsource"
)

// sourceReason is the pass reason of a failed fetch: the source's own when
// its error names one (an OCI artifact source says "oci-rollback", …),
// else gitsource's, as "git-…".
func sourceReason(err error) Reason {
	var r interface{ SourceReason() Reason }
	if errors.As(err, &r) {
		return r.SourceReason()
	}
	return gitsource.ReasonOf(err).In("git")
}
