package reconcile

import (
	"errors"

	"github.com/bootsync/bootsync/gitsource"
)

// sourceReason is the pass reason of a failed fetch: the source's own when
// its error names one (an OCI artifact source says "oci-rollback", …),
// else gitsource's, prefixed "git-".
func sourceReason(err error) string {
	var r interface{ SourceReason() string }
	if errors.As(err, &r) {
		return r.SourceReason()
	}
	return "git-" + gitsource.ErrorReason(err)
}
