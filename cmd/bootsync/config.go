package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"

	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/secrets"
)

// Config files, lowest precedence first. The image ships the defaults; the
// host's /etc overrides them; BOOTSYNC_* variables and flags override both.
// Variables only so that tests can point them at temporary files.
var (
	imageConfigFile = "/usr/lib/bootsync/config.yaml"
	hostConfigFile  = "/etc/bootsync/config.yaml"
)

// Config is the host-local configuration of the agent. Trust roots live
// here, never only in the fleet repository.
type Config struct {
	Host     HostConfig     `mapstructure:"host" yaml:"host"`
	Repo     RepoConfig     `mapstructure:"repo" yaml:"repo"`
	Trust    TrustConfig    `mapstructure:"trust" yaml:"trust"`
	Registry RegistryConfig `mapstructure:"registry" yaml:"registry"`
	Interval time.Duration  `mapstructure:"interval" yaml:"interval"`
	Jitter   time.Duration  `mapstructure:"jitter" yaml:"jitter"`
	StateDir string         `mapstructure:"stateDir" yaml:"stateDir"`
	Root     string         `mapstructure:"root" yaml:"root"`
	Bootc    BootcConfig    `mapstructure:"bootc" yaml:"bootc"`
	Reboot   RebootConfig   `mapstructure:"reboot" yaml:"reboot"`
	Metrics  MetricsConfig  `mapstructure:"metrics" yaml:"metrics"`
	Etc      EtcConfig      `mapstructure:"etc" yaml:"etc"`
	Agent    AgentConfig    `mapstructure:"agent" yaml:"agent"`
	Network  NetworkConfig  `mapstructure:"network" yaml:"network"`
	Limits   LimitsConfig   `mapstructure:"limits" yaml:"limits"`
	Secrets  SecretsConfig  `mapstructure:"secrets" yaml:"secrets"`

	// files are the configuration files that were read.
	files []string
}

// EtcConfig limits what the fleet repository may do to this host's /etc.
type EtcConfig struct {
	// AllowReserved lists reserved paths (etcoverlay.ReservedPaths and the
	// files this configuration names) that the fleet may manage anyway: a
	// file, or a directory and everything below it.
	AllowReserved []string `mapstructure:"allowReserved" yaml:"allowReserved"`
}

// SecretsConfig names the host's own keys for the secrets of its spec
// (docs/secrets.md). They are read from this host only, never from the
// fleet repository, and the fleet may not write them (reserved paths).
type SecretsConfig struct {
	// AgeIdentityFiles are age identity files (age-keygen's format).
	AgeIdentityFiles []string `mapstructure:"ageIdentityFiles" yaml:"ageIdentityFiles"`
	// SSHHostKeys are OpenSSH private host keys used as age identities
	// (Ed25519 also as the X25519 identity ssh-to-age derives). Unset:
	// /etc/ssh/ssh_host_ed25519_key and /etc/ssh/ssh_host_rsa_key under
	// root; a missing one is skipped. [] turns them off.
	SSHHostKeys []string `mapstructure:"sshHostKeys" yaml:"sshHostKeys"`
}

// sshHostKeys are the SSH host keys to decrypt with.
func (s SecretsConfig) sshHostKeys(root string) []string {
	if s.SSHHostKeys != nil {
		return s.SSHHostKeys
	}
	out := make([]string, len(secrets.DefaultSSHHostKeys))
	for i, p := range secrets.DefaultSSHHostKeys {
		out[i] = filepath.Join(root, p)
	}
	return out
}

// AgentConfig says how the agent shares the host with other software.
type AgentConfig struct {
	// AllowOtherUpdaters lets passes run while another updater
	// (bootc-fetch-apply-updates.timer, zincati.service,
	// rpm-ostreed-automatic.timer) is enabled; by default they are refused.
	AllowOtherUpdaters bool `mapstructure:"allowOtherUpdaters" yaml:"allowOtherUpdaters"`
}

// HostConfig names this host and adds labels to its fleet-repo labels.
type HostConfig struct {
	Name   string            `mapstructure:"name" yaml:"name"`
	Labels map[string]string `mapstructure:"labels" yaml:"labels"`
}

// RepoConfig says where the fleet repository is and how to reach it.
type RepoConfig struct {
	URL       string `mapstructure:"url" yaml:"url"`
	Ref       string `mapstructure:"ref" yaml:"ref"`
	Path      string `mapstructure:"path" yaml:"path"`
	AllowHTTP bool   `mapstructure:"allowHTTP" yaml:"allowHTTP"`
	// AllowReset accepts exactly this commit even if it does not descend
	// from the last applied one (a deliberate history rewrite).
	AllowReset string  `mapstructure:"allowReset" yaml:"allowReset"`
	Auth       GitAuth `mapstructure:"auth" yaml:"auth"`
}

// GitAuth points at credential files; credentials are never inline.
type GitAuth struct {
	UsernameFile          string `mapstructure:"usernameFile" yaml:"usernameFile"`
	PasswordFile          string `mapstructure:"passwordFile" yaml:"passwordFile"`
	SSHKeyFile            string `mapstructure:"sshKeyFile" yaml:"sshKeyFile"`
	KnownHostsFile        string `mapstructure:"knownHostsFile" yaml:"knownHostsFile"`
	InsecureIgnoreHostKey bool   `mapstructure:"insecureIgnoreHostKey" yaml:"insecureIgnoreHostKey"`
	CAFile                string `mapstructure:"caFile" yaml:"caFile"`
}

// TrustConfig holds the host's trust roots. The fleet repository may only
// add requirements to these.
type TrustConfig struct {
	SigningKeys       []string `mapstructure:"signingKeys" yaml:"signingKeys"`
	RequireSignatures bool     `mapstructure:"requireSignatures" yaml:"requireSignatures"`
	Registries        []string `mapstructure:"registries" yaml:"registries"`
	CommitKeys        []string `mapstructure:"commitKeys" yaml:"commitKeys"`
	// FleetKeys are the PEM public keys that may sign fleet artifacts
	// (an oci:// repo.url); any one may sign.
	FleetKeys []string `mapstructure:"fleetKeys" yaml:"fleetKeys"`
	// AcceptBundles also accepts cosign v3 Sigstore bundles, which bootc
	// itself cannot verify.
	AcceptBundles bool `mapstructure:"acceptBundles" yaml:"acceptBundles"`
}

// hostTrust is the host's own image policy.
func (t TrustConfig) hostTrust() policy.HostTrust {
	return policy.HostTrust{SigningKeys: slices.Clone(t.SigningKeys), RequireSignatures: t.RequireSignatures,
		AllowedRegistries: t.Registries, AcceptBundles: t.AcceptBundles}
}

// RegistryConfig tunes registry access.
type RegistryConfig struct {
	// Insecure lists registries reached over plain HTTP (tests, labs).
	Insecure []string `mapstructure:"insecure" yaml:"insecure"`
}

// BootcConfig says which bootc binary to run.
type BootcConfig struct {
	Path string `mapstructure:"path" yaml:"path"`
}

// RebootConfig says how to reboot into a staged deployment.
type RebootConfig struct {
	Command []string `mapstructure:"command" yaml:"command"`
}

// MetricsConfig says where Prometheus metrics are served; empty disables.
type MetricsConfig struct {
	Address string `mapstructure:"address" yaml:"address"`
}

func defaultConfig() map[string]any {
	return map[string]any{
		"host.name":                       "",
		"host.labels":                     map[string]string{},
		"repo.url":                        "",
		"repo.ref":                        "main",
		"repo.path":                       "",
		"repo.allowHTTP":                  false,
		"repo.allowReset":                 "",
		"repo.auth.usernameFile":          "",
		"repo.auth.passwordFile":          "",
		"repo.auth.sshKeyFile":            "",
		"repo.auth.knownHostsFile":        "",
		"repo.auth.insecureIgnoreHostKey": false,
		"repo.auth.caFile":                "",
		"trust.signingKeys":               []string{},
		"trust.requireSignatures":         true,
		"trust.registries":                []string{},
		"trust.commitKeys":                []string{},
		"trust.fleetKeys":                 []string{},
		"trust.acceptBundles":             true,
		"registry.insecure":               []string{},
		"interval":                        "5m",
		"jitter":                          "30s",
		"stateDir":                        "/var/lib/bootsync",
		"root":                            "/",
		"bootc.path":                      "bootc",
		"reboot.command":                  []string{"systemctl", "reboot"},
		"metrics.address":                 "127.0.0.1:9469",
		"etc.allowReserved":               []string{},
		"agent.allowOtherUpdaters":        false,
		"network.timeout":                 netdeadline.Default.String(),
		"limits.fileSize":                 "",
		"limits.documentSize":             "",
		"limits.repoSize":                 "",
		"limits.templateSteps":            "",
		"limits.templateMemory":           "",
		"secrets.ageIdentityFiles":        []string{},
	}
}

// configFlag binds a command-line flag to a config key.
type configFlag struct {
	key  string
	flag *pflag.Flag
}

// loadConfig layers the image defaults, the host file (hostFile, or
// /etc/bootsync/config.yaml when empty), BOOTSYNC_* variables and flags.
// Every file is decoded strictly first so that an unknown or mistyped key
// is an error naming the file and line.
func loadConfig(hostFile string, flags []configFlag) (*Config, error) {
	v := viper.New()
	for k, val := range defaultConfig() {
		v.SetDefault(k, val)
	}
	v.SetConfigType("yaml")
	files := []struct {
		path     string
		required bool
	}{{imageConfigFile, false}, {hostConfigFile, false}}
	if hostFile != "" {
		files[1] = struct {
			path     string
			required bool
		}{hostFile, true}
	}
	var read []string
	for _, f := range files {
		data, err := boundedread.ReadFile(f.path, boundedread.MaxLocalFile)
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		read = append(read, f.path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := checkConfigFile(f.path, data); err != nil {
			return nil, err
		}
		if err := v.MergeConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("read config %s: %w", f.path, err)
		}
	}
	v.SetEnvPrefix("BOOTSYNC")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, f := range flags {
		if f.flag != nil && f.flag.Changed {
			if err := v.BindPFlag(f.key, f.flag); err != nil {
				return nil, fmt.Errorf("bind flag --%s: %w", f.flag.Name, err)
			}
		}
	}
	var cfg Config
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true // BOOTSYNC_* values arrive as strings
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			stringToMapHook,
		)
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.files = read
	return &cfg, nil
}

// stringToMapHook reads BOOTSYNC_HOST_LABELS="site=seoul,ring=0".
func stringToMapHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Map {
		return data, nil
	}
	out := map[string]string{}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return out, nil
}

// checkConfigFile decodes one config file strictly, so mistakes name the
// file and line ("/etc/bootsync/config.yaml: line 4: field intervall not
// found").
func checkConfigFile(path string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var strict Config
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) { // an empty file is valid
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

func (c *Config) validate() error {
	if c.Interval <= 0 {
		return fmt.Errorf("config: interval must be positive, got %s", c.Interval)
	}
	if c.Jitter < 0 {
		return fmt.Errorf("config: jitter must not be negative, got %s", c.Jitter)
	}
	if c.StateDir == "" {
		return fmt.Errorf("config: stateDir must be set")
	}
	if _, err := etcoverlay.NewReserved(nil, c.Etc.AllowReserved); err != nil {
		return fmt.Errorf("config: etc.allowReserved: %w", err)
	}
	if len(c.Reboot.Command) == 0 {
		return fmt.Errorf("config: reboot.command must not be empty")
	}
	if err := c.validateBudgets(); err != nil {
		return err
	}
	if c.Host.Name == "" {
		name, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("config: host.name is not set and the hostname is unknown: %w", err)
		}
		c.Host.Name = name
	}
	return nil
}

// namedFiles are the files this configuration consists of or names: the
// fleet repository must not be able to rewrite them (reserved paths).
func (c *Config) namedFiles() []string {
	a := c.Repo.Auth
	out := slices.Concat(c.files, c.Trust.SigningKeys, c.Trust.CommitKeys, c.Trust.FleetKeys,
		[]string{a.UsernameFile, a.PasswordFile, a.SSHKeyFile, a.KnownHostsFile, a.CAFile, c.StateDir},
		c.Secrets.AgeIdentityFiles, c.Secrets.sshHostKeys(c.Root))
	for i, f := range out {
		out[i] = etcoverlay.HostPath(c.Root, f)
	}
	return out
}
