package reconcile

import (
	"context"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
)

// The agent reaches the outside world only through these interfaces, each
// what a pass needs and no more: the production types satisfy them
// (gitsource.Remote, bootc.Driver, registry.Client, etcoverlay.Writer,
// hostpolicy.Checker behind a small adapter), and the package's own tests
// run whole passes with a bootc stand-in.

// Source is the fleet repository as the agent sees it (gitsource.Remote).
type Source interface {
	// Poll fetches the ref if it moved and checks the trust rules.
	Poll(ctx context.Context, lastApplied string) (*gitsource.PollResult, error)
	// Ping proves the remote answers (one ref advertisement), for the
	// management-plane health check.
	Ping(ctx context.Context) error
}

// Bootc is the host's bootc (bootc.Driver).
type Bootc interface {
	Status(ctx context.Context) (*bootc.Host, error)
	Version(ctx context.Context) (bootc.Version, error)
	Switch(ctx context.Context, imageRef string, opts bootc.SwitchOptions) (*bootc.Result, error)
	Rollback(ctx context.Context, opts bootc.RollbackOptions) (*bootc.Result, error)
	Upgrade(ctx context.Context, opts bootc.UpgradeOptions) (*bootc.Result, error)
}

// Registry is the container registry as the agent uses it
// (registry.Client): tag → digest, the platform manifest, signatures for
// the image policy, and a ping for the management-plane health check.
type Registry interface {
	Resolve(ctx context.Context, ref string) (*registry.Resolved, error)
	ResolvePinned(ctx context.Context, ref, digest string) (*registry.Resolved, error)
	PlatformDigest(ctx context.Context, ref, arch string) (string, error)
	Ping(ctx context.Context, ref string) error
	// ReloadRegistriesConf rereads the host's registries.conf, once a pass.
	ReloadRegistriesConf()
	policy.SignatureSource
}

// EtcWriter is the /etc overlay writer (etcoverlay.Writer).
type EtcWriter interface {
	Plan(ctx context.Context, files []hostspec.EtcFile) (*etcoverlay.Plan, error)
	Apply(ctx context.Context, p *etcoverlay.Plan) (*etcoverlay.Result, error)
	RunOnChange(ctx context.Context, res *etcoverlay.Result) error
	Managed(ctx context.Context) ([]etcoverlay.ManagedFile, error)
}

// Deps are the agent's connections to the outside world.
type Deps struct {
	Source   Source
	Registry Registry
	Bootc    Bootc
	Etc      EtcWriter
	Metrics  *Metrics // optional
	// HostPolicy evaluates the host's containers-policy.json before
	// anything is staged (optional: nil skips it).
	HostPolicy HostPolicy
}
