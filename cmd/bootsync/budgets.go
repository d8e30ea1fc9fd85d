package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/netdeadline"
)

// NetworkConfig bounds every network call.
type NetworkConfig struct {
	// Timeout bounds each phase of every request to the Git server, the
	// registry, FleetLock and the management-plane checks: connect, TLS or
	// SSH handshake, first byte of the answer, and every pause after it.
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
}

// LimitsConfig is this host's ceilings for the fleet repository's limits
// (hostspec.Limits): fleet.yaml may raise its limits up to these, never
// beyond. Empty keeps hostspec.DefaultCeilings.
type LimitsConfig struct {
	FileSize       string `mapstructure:"fileSize" yaml:"fileSize"`
	DocumentSize   string `mapstructure:"documentSize" yaml:"documentSize"`
	RepoSize       string `mapstructure:"repoSize" yaml:"repoSize"`
	TemplateSteps  string `mapstructure:"templateSteps" yaml:"templateSteps"`
	TemplateMemory string `mapstructure:"templateMemory" yaml:"templateMemory"`
}

// ceilings parses the configured ceilings.
func (l LimitsConfig) ceilings() (hostspec.Limits, error) {
	var out hostspec.Limits
	for name, text := range map[string]string{
		"fileSize": l.FileSize, "documentSize": l.DocumentSize, "repoSize": l.RepoSize,
		"templateSteps": l.TemplateSteps, "templateMemory": l.TemplateMemory,
	} {
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := out.SetLimit(name, text); err != nil {
			return hostspec.Limits{}, fmt.Errorf("config: limits.%s: %w", name, err)
		}
	}
	return out.WithDefaults(hostspec.DefaultCeilings), nil
}

func (c *Config) validateBudgets() error {
	if c.Network.Timeout <= 0 {
		return fmt.Errorf("config: network.timeout must be positive, got %s", c.Network.Timeout)
	}
	_, err := c.Limits.ceilings()
	return err
}

// budgetFlags are the limits of the commands that read a fleet repository
// in CI: the network timeout and the ceilings for fleet.yaml's limits.
type budgetFlags struct {
	netTimeout time.Duration
	limits     []string
}

func (b *budgetFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&b.netTimeout, "network-timeout", netdeadline.Default, "bound on each phase of a network call (connect, handshake, first byte, every pause)")
	fl.StringArrayVar(&b.limits, "limit", nil, "ceiling for one of fleet.yaml's limits, as NAME=VALUE (e.g. templateSteps=5000000, fileSize=64Mi); repeatable")
}

// ceilings parses --limit flags over hostspec.DefaultCeilings.
func (b *budgetFlags) ceilings() (hostspec.Limits, error) {
	var out hostspec.Limits
	for _, kv := range b.limits {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return hostspec.Limits{}, fmt.Errorf("--limit %q: want NAME=VALUE", kv)
		}
		if err := out.SetLimit(strings.TrimSpace(name), value); err != nil {
			return hostspec.Limits{}, fmt.Errorf("--limit %s: %w", kv, err)
		}
	}
	if b.netTimeout <= 0 {
		return hostspec.Limits{}, fmt.Errorf("--network-timeout must be positive, got %s", b.netTimeout)
	}
	return out.WithDefaults(hostspec.DefaultCeilings), nil
}
