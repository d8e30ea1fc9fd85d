package health

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/bootsync/bootsync/hostspec"
)

// Names of the built-in management-plane checks. The colon keeps them apart
// from check names declared in a fleet repository.
const (
	GitRemoteCheck = "bootsync:git-remote"
	RegistryCheck  = "bootsync:registry"
)

// ProbeCheck returns a check that calls probe, with the hostspec defaults for
// timeout, interval and retries. target says what the probe reaches, for
// reports.
func ProbeCheck(name, target string, probe Probe, required bool) (Check, error) {
	if name == "" {
		return Check{}, errors.New("probe check: name is empty")
	}
	if probe == nil {
		return Check{}, fmt.Errorf("probe check %q: probe is nil", name)
	}
	return Check{
		Name:     name,
		Kind:     KindProbe,
		Target:   target,
		Required: required,
		Timeout:  hostspec.DefaultCheckTimeout,
		Interval: hostspec.DefaultCheckInterval,
		Retries:  hostspec.DefaultCheckRetries,
		probe:    probe,
	}, nil
}

// ManagementPlane returns the built-in checks that run after every OS update:
// the host must still reach its Git remote and the registry of its image.
// An update that cuts a host off from its own control plane can never be
// corrected from Git, so both checks are always required.
//
// The agent supplies the probes, so they use the same transport, auth and
// proxies as the real fetch: typically an ls-remote of the fleet repository
// and a registry ping (or HEAD of the image manifest). gitRemote and
// registry only label the report; credentials in gitRemote are redacted.
func ManagementPlane(gitRemote string, probeGit Probe, registry string, probeRegistry Probe) ([]Check, error) {
	git, err := ProbeCheck(GitRemoteCheck, redactURL(gitRemote), probeGit, true)
	if err != nil {
		return nil, fmt.Errorf("management-plane checks: %w", err)
	}
	reg, err := ProbeCheck(RegistryCheck, registry, probeRegistry, true)
	if err != nil {
		return nil, fmt.Errorf("management-plane checks: %w", err)
	}
	return []Check{git, reg}, nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
