package reconcile

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/policy/window"
)

// verifier is the image policy for one spec: the host's trust plus the
// fleet repository's additions (which can only tighten it).
func (a *Agent) verifier(spec *hostspec.HostSpec) (*policy.Verifier, error) {
	v, err := a.cfg.Trust.Verifier(spec.Policy.Registries, spec.Policy.RequireSignatures)
	if err != nil {
		return nil, &PassError{Reason: ReasonPolicy, Err: fmt.Errorf("image policy for host %s: %w", a.cfg.Host, err)}
	}
	return v, nil
}

// needsVerdict reports whether the plan makes the host boot an image it
// does not run now.
func needsVerdict(p Plan) bool {
	return slices.ContainsFunc(p.Steps, func(s Step) bool {
		switch s.Action {
		case ActionSwitch, ActionRollback, ActionReleaseStaged, ActionReboot:
			return true
		}
		return false
	})
}

// gate verifies the desired digest against the image policy, then against
// the host's own containers policy (what bootc's pull will enforce), before
// any step that could boot it. A verdict is cached per digest and trust
// configuration: a revert to an image verified before needs no registry.
func (a *Agent) gate(ctx context.Context, spec *hostspec.HostSpec, v *policy.Verifier, d Desired, res *PassResult) error {
	key := d.Digests[0] + " " + a.trustFingerprint(spec) + " " + a.hostPolicyFingerprint()
	if verdict, ok := a.verdicts.get(key); ok {
		recordVerdict(res, &verdict)
		return nil
	}
	verdict, err := v.Verify(ctx, a.deps.Registry, d.ImageRef)
	if err != nil {
		return &PassError{Reason: imageReason(err), Err: fmt.Errorf("verify the image for host %s: %w", a.cfg.Host, err)}
	}
	if verdict.HostPolicy, err = a.checkHostPolicy(ctx, verdict.Reference); err != nil {
		return err
	}
	a.log.Info("image verified", "image", verdict.Reference, "signed", verdict.Signed, "format", verdict.Format, "key", verdict.KeyFile,
		"signatureFrom", verdict.SignatureFrom, "hostPolicy", verdict.HostPolicy)
	a.verdicts.put(key, *verdict)
	recordVerdict(res, verdict)
	return nil
}

// noteVerdict shows the cached verdict for the desired image, if any, in
// the status of a pass that does not need to gate (e.g. converged).
func (a *Agent) noteVerdict(spec *hostspec.HostSpec, d Desired, res *PassResult) {
	if v, ok := a.verdicts.get(d.Digests[0] + " " + a.trustFingerprint(spec) + " " + a.hostPolicyFingerprint()); ok {
		recordVerdict(res, &v)
	}
}

func recordVerdict(res *PassResult, v *policy.Verdict) {
	if res.Desired != nil {
		res.Desired.SignatureFrom, res.Desired.HostPolicy = v.SignatureFrom, v.HostPolicy
	}
}

// trustFingerprint changes whenever anything a verdict depends on changes.
func (a *Agent) trustFingerprint(spec *hostspec.HostSpec) string {
	return a.cfg.Trust.Fingerprint(spec.Policy.Registries, spec.Policy.RequireSignatures)
}

// verdictCache remembers accepted images.
type verdictCache struct{ c jsonCache[policy.Verdict] }

func newVerdictCache(stateDir string) *verdictCache {
	return &verdictCache{c: jsonCache[policy.Verdict]{path: filepath.Join(stateDir, "cache", "verdicts.json")}}
}

func (v *verdictCache) get(key string) (policy.Verdict, bool)  { return v.c.get(key) }
func (v *verdictCache) put(key string, verdict policy.Verdict) { v.c.put(key, verdict) }

func parseWindows(ws []hostspec.Window) (RebootWindow, error) {
	s, err := window.Parse(ws)
	if err != nil {
		return nil, fmt.Errorf("update.windows: %w", err)
	}
	return s, nil
}
