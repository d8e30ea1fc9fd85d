package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/policy/hostpolicy"
	"github.com/bootsync/bootsync/registry"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Check OS images the way a host does",
	}
	cmd.AddCommand(newImageVerifyCmd())
	return cmd
}

func newImageVerifyCmd() *cobra.Command {
	var (
		keys       []string
		configFile string
		repoDir    string
		insecure   []string
		noBundles  bool
	)
	cmd := &cobra.Command{
		Use:   "verify REF",
		Short: "Resolve an image and verify it with the policy a host applies",
		Long: `verify resolves REF (a tag once, or a digest), then applies the host's image policy
from its config (trust.signingKeys, trust.requireSignatures, trust.registries,
registry.insecure) and, with --repo, the fleet's policy and bootsync.lock: the
registry allow-lists first, then a signature for exactly that digest by a trusted
key (cosign's tag-based format, or a cosign v3 Sigstore bundle). It prints the
digest, the key that matched and the verdict. --key adds trusted keys and makes
signatures required.

Registry requests follow the host's registries.conf (mirrors, remaps, blocked and
insecure registries) as bootc's pulls do; the output names the repository that
answered. Then the host's own containers-policy.json (under root) is evaluated for
the same repository@digest with containers/image, as bootc's pull would: both
verdicts are printed.

Exit status: 0 accepted by both, 1 refused by either (the reason is printed:
no-signature, bad-signature, wrong-digest, wrong-identity, registry-not-allowed,
malformed-signature, host-policy), 2 on trouble (e.g. the registry cannot be
reached).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ref := args[0]
			cfg, err := loadConfig(configFile, []configFlag{{key: "network.timeout", flag: cmd.Flags().Lookup("network-timeout")}})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			// --key adds trusted keys and makes signatures required.
			trust := cfg.Trust.hostTrust()
			trust.SigningKeys = append(trust.SigningKeys, keys...)
			trust.RequireSignatures = trust.RequireSignatures || len(keys) > 0
			trust.AcceptBundles = trust.AcceptBundles && !noBundles
			var fleet hostspec.Policy
			pinned := ""
			if repoDir != "" {
				rf := repoFlags{repo: repoDir, budget: budgetFlags{netTimeout: cfg.Network.Timeout}}
				r, err := rf.openRevision(ctx, "")
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if f := r.Repo.Fleet(); f != nil {
					fleet = f.Policy
				}
				if l := r.Repo.Lock(); l != nil && !registry.IsDigestReference(ref) {
					pinned = l.Images[ref]
				}
			}
			v, err := trust.Verifier(fleet.Registries, fleet.RequireSignatures)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			return runImageVerify(cmd, cfg, v, ref, pinned, append(append([]string(nil), cfg.Registry.Insecure...), insecure...))
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "trusted PEM public key (cosign.pub); repeatable; makes signatures required")
	cmd.Flags().StringVar(&configFile, "config", "", "host config file (default /etc/bootsync/config.yaml)")
	cmd.Flags().StringVar(&repoDir, "repo", "", "fleet repository whose policy and bootsync.lock apply too")
	cmd.Flags().StringSliceVar(&insecure, "insecure-registry", nil, "registry host:port reached over plain HTTP (test registries only)")
	cmd.Flags().Duration("network-timeout", netdeadline.Default, "bound on each phase of a registry request (config network.timeout)")
	cmd.Flags().BoolVar(&noBundles, "no-bundles", false, "accept only tag-based signatures, the format bootc's own policy can check")
	return cmd
}

// runImageVerify resolves and verifies ref with bootsync's policy, then
// evaluates the host's containers policy for the same digest, printing both.
func runImageVerify(cmd *cobra.Command, cfg *Config, v *policy.Verifier, ref, pinned string, allInsecure []string) error {
	out := cmd.OutOrStdout()
	clientOpts := []registry.Option{registry.WithInsecureRegistries(allInsecure...), registry.WithNetworkTimeout(cfg.Network.Timeout)}
	if cfg.Root != "" {
		clientOpts = append(clientOpts, registry.WithAuthRoot(cfg.Root), registry.WithRegistriesConf(cfg.Root))
	}
	client, err := registry.New(clientOpts...)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	verdict, err := v.ResolveAndVerify(cmd.Context(), client, ref, pinned)
	var refused *policy.RefusedError
	target := ""
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(out, "image:    %s\n", refused.Ref)
		fmt.Fprintf(out, "verdict:  refused\nreason:   %s\ndetail:   %s\n", refused.Reason, refused.Detail)
		if registry.IsDigestReference(refused.Ref) {
			target = refused.Ref
		}
	case err != nil:
		return &exitError{code: 2, err: err}
	default:
		if pinned != "" {
			fmt.Fprintf(out, "locked:   %s (bootsync.lock)\n", pinned)
		}
		fmt.Fprint(out, verdict.String())
		target = verdict.Reference
	}
	hostRefused, err := printHostPolicy(cmd, cfg.Root, allInsecure, target)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if refused != nil || hostRefused {
		return &exitError{code: 1}
	}
	return nil
}

// printHostPolicy evaluates the host's containers policy for target (the
// repository@digest bootc would be given) and prints the verdict. It
// reports whether the policy refuses the image.
func printHostPolicy(cmd *cobra.Command, root string, insecure []string, target string) (bool, error) {
	out := cmd.OutOrStdout()
	if target == "" {
		return false, nil
	}
	if root == "" {
		root = "/"
	}
	checker, err := hostpolicy.New(root, insecure...)
	if err != nil {
		return false, err
	}
	v, err := checker.Check(cmd.Context(), target)
	var refused *policy.RefusedError
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(out, "host policy: refused\nreason:   %s\ndetail:   %s\n", refused.Reason, refused.Detail)
		return true, nil
	case err != nil:
		return false, err
	}
	fmt.Fprint(out, v.String())
	return false, nil
}
