package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/selinux/go-selinux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/apply/bootc"
	"github.com/bootsync/bootsync/apply/etcoverlay"
	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/policy/hostpolicy"
	"github.com/bootsync/bootsync/reconcile"
	"github.com/bootsync/bootsync/registry"
)

// hostFlags are the flags of every command that acts on this host.
type hostFlags struct {
	configFile string
	hostName   string
	stateDir   string
	root       string
}

func (f *hostFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.configFile, "config", "", "host config file (default "+hostConfigFile+")")
	cmd.Flags().StringVar(&f.hostName, "host", "", "this host's name in the fleet repository (config host.name)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "state directory (config stateDir)")
	cmd.Flags().StringVar(&f.root, "root", "", "host root directory (config root)")
}

func (f *hostFlags) load(cmd *cobra.Command) (*Config, error) {
	return loadConfig(f.configFile, []configFlag{
		{key: "host.name", flag: cmd.Flags().Lookup("host")},
		{key: "stateDir", flag: cmd.Flags().Lookup("state-dir")},
		{key: "root", flag: cmd.Flags().Lookup("root")},
	})
}

// newLogger writes one structured line per event to stderr, which journald
// collects with the unit.
func newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// buildAgent wires the agent from the host configuration.
func buildAgent(cfg *Config, log *slog.Logger, metrics *reconcile.Metrics, allowReset string) (*reconcile.Agent, error) {
	if cfg.Repo.URL == "" {
		return nil, errors.New("config: repo.url is not set")
	}
	src, err := newFleetSource(cfg, allowReset)
	if err != nil {
		return nil, err
	}
	reg, hostPolicy, err := newImageAccess(cfg)
	if err != nil {
		return nil, err
	}
	drv, err := bootc.New(bootc.WithPath(cfg.Bootc.Path))
	if err != nil {
		return nil, fmt.Errorf("bootc: %w", err)
	}
	etcw, err := newEtcWriter(cfg)
	if err != nil {
		return nil, err
	}
	clock, err := testClock()
	if err != nil {
		return nil, err
	}
	ceilings, err := cfg.Limits.ceilings()
	if err != nil {
		return nil, err
	}
	return reconcile.New(reconcile.Config{
		Host:               cfg.Host.Name,
		Labels:             cfg.Host.Labels,
		StateDir:           cfg.StateDir,
		Root:               cfg.Root,
		RebootCommand:      cfg.Reboot.Command,
		Trust:              cfg.Trust.hostTrust(),
		ReservedPaths:      cfg.namedFiles(),
		AllowReserved:      cfg.Etc.AllowReserved,
		AllowOtherUpdaters: cfg.Agent.AllowOtherUpdaters,
		GitRemote:          cfg.Repo.URL,
		NetworkTimeout:     cfg.Network.Timeout,
		LimitCeilings:      ceilings,
		AgeIdentityFiles:   cfg.Secrets.AgeIdentityFiles,
		SSHHostKeys:        cfg.Secrets.sshHostKeys(cfg.Root),
		FaultPoint:         os.Getenv("BOOTSYNC_FAULT_POINT"),
		Clock:              clock,
		Logger:             log,
	}, reconcile.Deps{Source: src, Registry: reg, Bootc: drv, Etc: etcw, Metrics: metrics, HostPolicy: hostPolicyGate{hostPolicy}})
}

// gitOptions are the fleet repository's options from the host config.
func gitOptions(cfg *Config, allowReset string) ([]gitsource.Option, error) {
	auth := cfg.Repo.Auth
	gitOpts := append([]gitsource.Option{
		gitsource.WithCacheDir(filepath.Join(cfg.StateDir, "git")),
		gitsource.WithRef(cfg.Repo.Ref),
	}, gitsource.Access{
		AllowHTTP:    cfg.Repo.AllowHTTP,
		UsernameFile: auth.UsernameFile, PasswordFile: auth.PasswordFile,
		SSHKeyFile: auth.SSHKeyFile, KnownHostsFile: auth.KnownHostsFile, InsecureIgnoreHostKey: auth.InsecureIgnoreHostKey,
		CAFile:         auth.CAFile,
		NetworkTimeout: cfg.Network.Timeout,
	}.Options()...)
	if cfg.Repo.Path != "" {
		gitOpts = append(gitOpts, gitsource.WithSubPath(cfg.Repo.Path))
	}
	if len(cfg.Trust.CommitKeys) > 0 {
		keys := make([]string, 0, len(cfg.Trust.CommitKeys))
		for _, f := range cfg.Trust.CommitKeys {
			b, err := boundedread.ReadFile(f, boundedread.MaxLocalFile)
			if err != nil {
				return nil, fmt.Errorf("config trust.commitKeys: %w", err)
			}
			keys = append(keys, string(b))
		}
		gitOpts = append(gitOpts, gitsource.WithCommitKeys(keys...))
	}
	if allowReset == "" {
		allowReset = cfg.Repo.AllowReset
	}
	if allowReset != "" {
		gitOpts = append(gitOpts, gitsource.WithAllowReset(allowReset))
	}
	return gitOpts, nil
}

// newImageAccess is the registry client, following the host's
// registries.conf, and the host's containers policy.
func newImageAccess(cfg *Config) (*registry.Client, *hostpolicy.Checker, error) {
	reg, err := registry.New(registry.WithAuthRoot(cfg.Root), registry.WithInsecureRegistries(cfg.Registry.Insecure...),
		registry.WithRegistriesConf(cfg.Root), registry.WithNetworkTimeout(cfg.Network.Timeout))
	if err != nil {
		return nil, nil, fmt.Errorf("registry client: %w", err)
	}
	hostPolicy, err := hostpolicy.New(cfg.Root, cfg.Registry.Insecure...)
	if err != nil {
		return nil, nil, err
	}
	return reg, hostPolicy, nil
}

// newEtcWriter is the /etc writer; with SELinux enabled, the files it
// writes get the loaded policy's labels.
func newEtcWriter(cfg *Config) (*etcoverlay.Writer, error) {
	opts := []etcoverlay.Option{etcoverlay.WithBootIDFile(filepath.Join(cfg.Root, "proc/sys/kernel/random/boot_id"))}
	if selinux.GetEnabled() {
		labels, err := etcoverlay.LoadFileContexts(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("/etc writer: SELinux is enabled: %w", err)
		}
		opts = append(opts, etcoverlay.WithLabels(labels))
	}
	// Secret files are tracked by digests keyed with this host's own key,
	// made on first use in the writer's state directory.
	etcState := filepath.Join(cfg.StateDir, "etc")
	key, err := etcoverlay.LoadSecretDigestKey(context.Background(), etcState, true)
	if err != nil {
		return nil, fmt.Errorf("/etc writer: %w", err)
	}
	opts = append(opts, etcoverlay.WithSecretDigestKey(key))
	w, err := etcoverlay.New(cfg.Root, etcState, opts...)
	if err != nil {
		return nil, fmt.Errorf("/etc writer: %w", err)
	}
	return w, nil
}

// hostPolicyGate hands the host policy's verdict to the agent as text.
type hostPolicyGate struct{ *hostpolicy.Checker }

func (g hostPolicyGate) Check(ctx context.Context, ref string) (string, error) {
	v, err := g.Checker.Check(ctx, ref)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(v.String()), nil
}

// testClock lets tests set the agent's clock (maintenance windows):
// BOOTSYNC_TEST_NOW=<RFC 3339 time> starts the clock there. Like
// BOOTSYNC_FAULT_POINT, it is for tests only.
func testClock() (func() time.Time, error) {
	v := os.Getenv("BOOTSYNC_TEST_NOW")
	if v == "" {
		return nil, nil
	}
	start, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, fmt.Errorf("BOOTSYNC_TEST_NOW: %w", err)
	}
	real := time.Now()
	return func() time.Time { return start.Add(time.Since(real)) }, nil
}

func newAgentCmd() *cobra.Command {
	var hf hostFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Keep this host converged with the fleet repository",
		Long: `agent runs reconcile passes: one at start, then every interval (plus jitter), and
one at once on SIGHUP. SIGTERM stops it after the current step. Metrics are served
on metrics.address; status.json in the state directory says what the last pass did.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			log := newLogger()
			metrics := reconcile.NewMetrics()
			agent, err := buildAgent(cfg, log, metrics, "")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if cfg.Metrics.Address != "" {
				srv, err := serveMetrics(ctx, cfg.Metrics.Address, metrics)
				if err != nil {
					return err
				}
				defer srv.Close()
				log.Info("serving metrics", "address", srv.Addr)
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			trigger := make(chan struct{}, 1)
			go func() {
				for range hup {
					select {
					case trigger <- struct{}{}:
					default: // a pass is already requested
					}
				}
			}()
			log.Info("agent started", "repo", gitsource.Redact(cfg.Repo.URL), "ref", cfg.Repo.Ref, "interval", cfg.Interval)
			err = agent.Run(ctx, cfg.Interval, cfg.Jitter, 30*time.Second, trigger)
			log.Info("agent stopped")
			return err
		},
	}
	hf.register(cmd)
	return cmd
}

func serveMetrics(ctx context.Context, addr string, m *reconcile.Metrics) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}

func newReconcileCmd() *cobra.Command {
	var (
		hf         hostFlags
		dryRun     bool
		allowReset string
	)
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Run one reconcile pass now",
		Long: `reconcile runs one pass: fetch the fleet repository, resolve this host's spec,
check the image policy, and converge /etc and the booted image as the update policy
allows. --dry-run prints the plan and changes nothing. --allow-reset accepts one
commit that does not descend from the last applied one (after a deliberate history
rewrite); without it such a commit is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			agent, err := buildAgent(cfg, newLogger(), nil, allowReset)
			if err != nil {
				return err
			}
			res, err := agent.Pass(cmd.Context(), reconcile.PassOptions{DryRun: dryRun})
			if res != nil && res.Plan.State != "" {
				printPlan(cmd.OutOrStdout(), res, false)
			}
			return err
		},
	}
	hf.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "plan and report, change nothing")
	cmd.Flags().StringVar(&allowReset, "allow-reset", "", "accept this commit even if it rewrites history (one-off)")
	return cmd
}

func newPlanCmd() *cobra.Command {
	var (
		hf     hostFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what a pass would do on this host, changing nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			cfg, err := hf.load(cmd)
			if err != nil {
				return err
			}
			agent, err := buildAgent(cfg, slog.New(slog.DiscardHandler), nil, "")
			if err != nil {
				return err
			}
			res, err := agent.Pass(cmd.Context(), reconcile.PassOptions{DryRun: true})
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), planJSON(res))
			}
			printPlan(cmd.OutOrStdout(), res, true)
			return nil
		},
	}
	hf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
