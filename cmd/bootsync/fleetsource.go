package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/registry"
)

// newFleetSource is where the agent's fleet repository comes from, by the
// scheme of repo.url: a fleet artifact in a registry (oci://), or Git.
func newFleetSource(cfg *Config, allowReset string) (reconcile.Source, error) {
	if ocisource.IsURL(cfg.Repo.URL) {
		return newOCISource(cfg, allowReset)
	}
	gitOpts, err := gitOptions(cfg, allowReset)
	if err != nil {
		return nil, err
	}
	src, err := gitsource.New(cfg.Repo.URL, gitOpts...)
	if err != nil {
		return nil, fmt.Errorf("fleet repository: %w", err)
	}
	return src, nil
}

// newOCISource follows a published fleet artifact through the registry,
// with the host's registry credentials, registries.conf mirrors and size
// ceiling, and trust.fleetKeys.
func newOCISource(cfg *Config, allowReset string) (*ocisource.Source, error) {
	r := cfg.Repo
	switch {
	case r.Path != "":
		return nil, errors.New("config: repo.path does not apply to an oci:// repo.url: the artifact holds the fleet directory (bootsync publish --repo DIR)")
	case r.AllowHTTP:
		return nil, errors.New("config: repo.allowHTTP does not apply to an oci:// repo.url: list a plain-HTTP registry in registry.insecure")
	case r.Auth != (GitAuth{}):
		return nil, errors.New("config: repo.auth applies to Git; for an oci:// repo.url the registry credentials come from the host's auth files, as for images (/etc/ostree/auth.json)")
	case len(cfg.Trust.FleetKeys) == 0:
		return nil, errors.New("config: an oci:// repo.url needs trust.fleetKeys: the public keys that sign the fleet artifacts")
	}
	reg, err := registry.New(registry.WithAuthRoot(cfg.Root), registry.WithInsecureRegistries(cfg.Registry.Insecure...),
		registry.WithRegistriesConf(cfg.Root), registry.WithNetworkTimeout(cfg.Network.Timeout),
		registry.WithRetry(registry.NoRetry))
	if err != nil {
		return nil, fmt.Errorf("fleet source: %w", err)
	}
	ceilings, err := cfg.Limits.ceilings()
	if err != nil {
		return nil, err
	}
	opts := []ocisource.Option{
		ocisource.WithCacheDir(filepath.Join(cfg.StateDir, "oci")),
		ocisource.WithRegistry(reg),
		ocisource.WithFleetKeys(cfg.Trust.FleetKeys...),
		ocisource.WithSizeLimit(ceilings.RepoSize),
		ocisource.WithPollInterval(cfg.Interval),
	}
	if len(cfg.Trust.CommitKeys) > 0 {
		opts = append(opts, ocisource.WithRequireVerifiedCommits())
	}
	if allowReset == "" {
		allowReset = r.AllowReset
	}
	if allowReset != "" {
		opts = append(opts, ocisource.WithAllowReset(allowReset))
	}
	src, err := ocisource.New(r.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("fleet repository: %w", err)
	}
	return src, nil
}
