package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/internal/boundedread"
	"github.com/bootsync/bootsync/internal/netdeadline"
	"github.com/bootsync/bootsync/ocisource/publish"
	"github.com/bootsync/bootsync/registry"
)

// publishFlags are `bootsync publish`'s flags.
type publishFlags struct {
	repo, rev, source, allowReset string
	key, keyPassword              string
	commitKeys, insecure          []string
	netTimeout                    time.Duration
}

func newPublishCmd() *cobra.Command {
	var pf publishFlags
	cmd := &cobra.Command{
		Use:   "publish oci://REGISTRY/REPOSITORY:TAG",
		Short: "Publish the fleet repository at a commit as a signed OCI artifact",
		Long: `publish (run by CI after a merge) packs the fleet directory at a commit (--rev,
default HEAD, of the checkout holding --repo) into an OCI artifact, pushes it, signs
its digest with --key in cosign's format, and then moves TAG to it: hosts whose
repo.url is oci://REGISTRY/REPOSITORY:TAG poll it instead of the Git server.

The artifact carries the commit id, its generation (the length of its longest parent
chain) and time, and whether its signature verified with --commit-keys. TAG only
moves forward: a commit that does not descend from the one TAG names is refused
unless --allow-reset names it. Publishing the same commit again changes nothing.

--key is cosign's encrypted key (cosign generate-key-pair; its password in
--key-password-file) or an unencrypted PKCS#8 PEM key. Registry credentials come
from the usual files (~/.docker/config.json, containers auth.json). The checkout
needs its full history (not a shallow clone).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := pf.run(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			m := res.Metadata
			if res.Unchanged {
				fmt.Fprintf(cmd.OutOrStdout(), "unchanged: %s already names commit %s (generation %d), signed: %s\n", args[0], m.Commit, m.Generation, res.Reference)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published commit %s (generation %d, commit signature %s) as %s\n", m.Commit, m.Generation, m.CommitSignature, res.Reference)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&pf.repo, "repo", ".", "the fleet directory inside a Git checkout (or a bare repository)")
	fl.StringVar(&pf.rev, "rev", "HEAD", "the commit to publish")
	fl.StringVar(&pf.key, "key", "", "private key that signs the artifact (required)")
	fl.StringVar(&pf.keyPassword, "key-password-file", "", "file holding the password of an encrypted --key")
	fl.StringArrayVar(&pf.commitKeys, "commit-keys", nil, "OpenPGP or SSH public keys (files) one of which must have signed the commit; repeatable")
	fl.StringVar(&pf.source, "source", "", "the Git URL recorded in the artifact (default: the remote origin's)")
	fl.StringVar(&pf.allowReset, "allow-reset", "", "move the tag to this commit although it does not descend from the published one")
	fl.StringArrayVar(&pf.insecure, "insecure-registry", nil, "a registry (host:port) reached over plain HTTP (tests only); repeatable")
	fl.DurationVar(&pf.netTimeout, "network-timeout", netdeadline.Default, "bound on each phase of a network call (connect, handshake, first byte, every pause)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func (pf *publishFlags) run(ctx context.Context, target string) (*publish.Result, error) {
	signer, err := publish.LoadSigningKey(pf.key, pf.keyPassword)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, f := range pf.commitKeys {
		b, err := boundedread.ReadFile(f, boundedread.MaxLocalFile)
		if err != nil {
			return nil, fmt.Errorf("--commit-keys: %w", err)
		}
		keys = append(keys, string(b))
	}
	dir, err := filepath.Abs(pf.repo)
	if err != nil {
		return nil, err
	}
	local, err := gitsource.OpenLocal(ctx, dir)
	if err != nil {
		return nil, err
	}
	rev, err := local.DirRevision(ctx, pf.rev)
	if err != nil {
		return nil, err
	}
	sub, err := local.DirInCheckout()
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(registry.WithInsecureRegistries(pf.insecure...), registry.WithNetworkTimeout(pf.netTimeout))
	if err != nil {
		return nil, err
	}
	return publish.Publish(ctx, publish.Input{
		Repository: local.Repository(), Commit: rev.Commit, Branch: local.Branch(pf.rev), FS: rev.FS, Path: sub,
		Target: target, Signer: signer, CommitKeys: keys, Source: pf.sourceURL(local), AllowReset: pf.allowReset, Registry: reg,
	})
}

// sourceURL is --source, else the URL of the remote "origin", without
// credentials.
func (pf *publishFlags) sourceURL(local *gitsource.Local) string {
	if pf.source != "" {
		return gitsource.Redact(pf.source)
	}
	return local.OriginURL()
}
