package reconcile

// BootedFrom is the commit whose spec first asked for the image the host
// boots: `bootsync fleet status` shows it beside the digest, so an operator
// sees which change of the fleet repository a host is running.
type BootedFrom struct {
	Digest string `json:"digest"`
	Commit string `json:"commit"`
}

// noteBootedFrom records the commit behind the booted image once the host
// runs the desired image with nothing pending: the first commit that asked
// for it. Later commits that keep the image keep the record. It reports
// whether the journal changed.
func noteBootedFrom(j *Journal, obs Observed, desired Desired) bool {
	if obs.Booted == nil || desired.Commit == "" || j.Pending != nil || !desired.matches(obs.Booted) {
		return false
	}
	if j.quarantined(desired.Digests) != "" {
		return false // it failed verification: not what the commit asked for
	}
	if j.BootedFrom != nil && j.BootedFrom.Digest == obs.Booted.Digest {
		return false
	}
	j.BootedFrom = &BootedFrom{Digest: obs.Booted.Digest, Commit: desired.Commit}
	return true
}

// bootedCommit is the commit behind the booted image, when known.
func bootedCommit(j *Journal, booted *Deployment) string {
	if j == nil || j.BootedFrom == nil || booted == nil || j.BootedFrom.Digest != booted.Digest {
		return ""
	}
	return j.BootedFrom.Commit
}
