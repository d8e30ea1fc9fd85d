package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bootsync/bootsync/ocisource"
	"github.com/bootsync/bootsync/registry"
)

// artifactRevision reads a published fleet artifact for the read-only
// commands: the URL's tag, or rev (another tag, or sha256:… for a digest),
// checked as a host checks it (signature by a --fleet-key first, size,
// content) but without anti-rollback: there is nothing applied here.
func (f *repoFlags) artifactRevision(ctx context.Context, rev string) (fs.FS, string, error) {
	if f.path != "" {
		return nil, "", fmt.Errorf("--path applies to a Git URL: a fleet artifact holds the fleet directory itself")
	}
	if len(f.fleetKeys) == 0 {
		return nil, "", fmt.Errorf("--repo %s needs --fleet-key: a fleet artifact is only read once its signature verified with a key you trust", f.repo)
	}
	url, err := artifactURL(f.repo, rev)
	if err != nil {
		return nil, "", err
	}
	ref, err := ocisource.ParseURL(url)
	if err != nil {
		return nil, "", err
	}
	var insecure []string
	if f.allowHTTP {
		insecure = append(insecure, strings.SplitN(ref, "/", 2)[0])
	}
	reg, err := registry.New(registry.WithInsecureRegistries(insecure...), registry.WithNetworkTimeout(f.budget.netTimeout))
	if err != nil {
		return nil, "", err
	}
	ceilings, err := f.budget.ceilings()
	if err != nil {
		return nil, "", err
	}
	dir := f.cacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, "", fmt.Errorf("no cache directory for the artifact (use --cache-dir): %w", err)
		}
		dir = filepath.Join(base, "bootsync", "oci")
	}
	src, err := ocisource.New(url, ocisource.WithCacheDir(dir), ocisource.WithRegistry(reg),
		ocisource.WithFleetKeys(f.fleetKeys...), ocisource.WithSizeLimit(ceilings.RepoSize))
	if err != nil {
		return nil, "", err
	}
	res, err := src.Poll(ctx, "")
	if err != nil {
		return nil, "", err
	}
	return res.Revision.FS, res.Commit, nil
}

// artifactURL is url with its tag or digest replaced by rev, if given.
func artifactURL(url, rev string) (string, error) {
	if rev == "" {
		return url, nil
	}
	if strings.ContainsAny(rev, "/@") {
		return "", fmt.Errorf("revision %q of a fleet artifact: give a tag or a digest (sha256:…)", rev)
	}
	repo := url
	if i := strings.LastIndex(repo, "@"); i > 0 {
		repo = repo[:i]
	} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	if strings.HasPrefix(rev, "sha256:") {
		return repo + "@" + rev, nil
	}
	return repo + ":" + rev, nil
}
