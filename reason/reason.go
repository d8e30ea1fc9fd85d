// Package reason is bootsync's one vocabulary of failure reasons: short,
// stable, machine-readable words ("not-found", "git-not-fast-forward",
// "no-signature") that status.json, the errors metric and `bootsync image
// verify` show, and that users alert on.
//
// Every package that fails with a reason names its reasons as constants of
// this type (each declares `type Reason = reason.Reason`) and returns the
// reason of an error from its ReasonOf(err).
package reason

// Reason is one word of the vocabulary.
type Reason string

// In is r as a reason of the part that failed: the agent reports a Git or
// registry failure as "git-" or "registry-" and the part's own reason.
func (r Reason) In(part string) Reason {
	prefix := Reason(part + "-")
	if len(r) >= len(prefix) && r[:len(prefix)] == prefix {
		return r
	}
	return prefix + r
}
