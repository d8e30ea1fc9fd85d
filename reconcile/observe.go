package reconcile

import (
	"context"
	"fmt"
	"runtime"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
)

// What a pass starts from: the host as bootc reports it, and the desired
// state the fleet repository resolves to for this host.

// observe reads bootc status and the host facts planning needs.
func (a *Agent) observe(ctx context.Context, j *Journal) (Observed, error) {
	host, err := a.deps.Bootc.Status(ctx)
	if err != nil {
		return Observed{}, &PassError{Reason: ReasonBootc, Err: fmt.Errorf("read bootc status: %w", err)}
	}
	obs := Observed{Now: a.now(), Journal: j, BootID: a.bootID()}
	if ver, err := a.deps.Bootc.Version(ctx); err == nil {
		obs.Capabilities = Capabilities{DownloadOnly: ver.SupportsDownloadOnly(), SoftReboot: ver.SupportsSoftReboot()}
	}
	s := host.Status
	obs.Booted, obs.Staged, obs.Rollback = deployment(s.Booted), deployment(s.Staged), deployment(s.Rollback)
	obs.RollbackQueued = s.RollbackQueued
	obs.UsersLoggedIn = countUserSessions(a.cfg.Root)
	obs.Arch = runtime.GOARCH
	if s.Booted != nil && s.Booted.Architecture() != "" {
		obs.Arch = s.Booted.Architecture()
	}
	return obs, nil
}

func deployment(e *bootc.BootEntry) *Deployment {
	if e == nil || e.Image == nil {
		return nil
	}
	return &Deployment{ImageRef: e.Image.Image.Image, Digest: e.Image.ImageDigest, DownloadOnly: e.DownloadOnly, SoftRebootCapable: e.SoftRebootCapable}
}

// desired fetches the fleet repository and resolves this host's spec to a
// pinned image, with the image policy (host trust plus the fleet's) that
// applies to it.
func (a *Agent) desired(ctx context.Context, j *Journal, arch string) (Desired, *hostspec.HostSpec, *policy.Verifier, error) {
	poll, err := a.deps.Source.Poll(ctx, j.LastApplied)
	if err != nil {
		return Desired{}, nil, nil, &PassError{Reason: sourceReason(err), Err: fmt.Errorf("fetch fleet repository: %w", err)}
	}
	if poll.Recovered != nil {
		a.log.Warn("git cache was corrupt and has been cloned again", "err", poll.Recovered)
	}
	spec := a.cachedSpec
	if a.cachedCommit != poll.Commit || spec == nil {
		if spec, err = a.resolveCommit(ctx, poll); err != nil {
			return Desired{}, nil, nil, err
		}
	}
	// The fleet may not loosen the host's own trust: nothing of this
	// commit is applied if it targets a reserved path.
	if err := a.reserved.CheckFiles(spec.Etc); err != nil {
		return Desired{}, nil, nil, &PassError{Reason: ReasonReservedPath, Err: fmt.Errorf("host %s at %s: %w", a.cfg.Host, short(poll.Commit), err)}
	}
	d := Desired{Commit: poll.Commit, Update: spec.Update}
	if len(spec.Update.Windows) > 0 {
		sched, err := parseWindows(spec.Update.Windows)
		if err != nil {
			return Desired{}, nil, nil, &PassError{Reason: ReasonInvalidRepo, Err: err}
		}
		d.Windows = sched
	}
	verifier, err := a.verifier(spec)
	if err != nil {
		return Desired{}, nil, nil, err
	}
	// The allow-lists are checked before any registry request.
	if err := verifier.CheckAllowed(spec.Image.Ref); err != nil {
		return Desired{}, nil, nil, &PassError{Reason: imageReason(err), Err: fmt.Errorf("image %s for host %s: %w", spec.Image.Ref, a.cfg.Host, err)}
	}
	var resolved *registry.Resolved
	if spec.Image.Digest != "" {
		resolved, err = a.deps.Registry.ResolvePinned(ctx, spec.Image.Ref, spec.Image.Digest)
	} else {
		resolved, err = a.deps.Registry.Resolve(ctx, spec.Image.Ref)
	}
	if err != nil {
		return Desired{}, nil, nil, &PassError{Reason: imageReason(err), Err: fmt.Errorf("resolve image %s for host %s: %w", spec.Image.Ref, a.cfg.Host, err)}
	}
	d.ImageRef, d.Endpoint = resolved.Reference(), resolved.Endpoint
	d.Digests = []string{resolved.Digest}
	plat, err := a.platformDigest(ctx, d.ImageRef, resolved, arch)
	if err != nil {
		return Desired{}, nil, nil, &PassError{Reason: imageReason(err), Err: fmt.Errorf("platform of image %s for host %s: %w", d.ImageRef, a.cfg.Host, err)}
	}
	if plat != "" && plat != resolved.Digest {
		d.Digests = append(d.Digests, plat)
	}
	return d, spec, verifier, nil
}

// platformDigest is the digest bootc will report for ref: the index entry
// for this host's architecture, cached by content address.
func (a *Agent) platformDigest(ctx context.Context, ref string, r *registry.Resolved, arch string) (string, error) {
	if r.MediaType != "" && !r.IsIndex {
		return r.Digest, nil
	}
	if d, ok := a.plats.get(r.Digest, arch); ok {
		return d, nil
	}
	d, err := a.deps.Registry.PlatformDigest(ctx, ref, arch)
	if err != nil {
		return "", err
	}
	a.plats.put(r.Digest, arch, d)
	return d, nil
}

// desiredFromPending rebuilds the desired state of a pending update from
// the journal, for verification when the fleet repository is unreachable.
func desiredFromPending(p *PendingReboot) Desired {
	return Desired{Commit: p.Commit, ImageRef: p.ImageRef, Digests: p.Digests, Update: p.Update}
}
