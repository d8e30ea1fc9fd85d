package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/hostspec"
	"github.com/bootsync/bootsync/ocisource"
)

// workingTree names the uncommitted files of a checkout in reports.
const workingTree = "working tree"

// repoFlags are the flags every read-only fleet command shares.
type repoFlags struct {
	repo         string // a directory, or a Git URL
	path         string // sub-path of the fleet inside a Git URL's repository
	cacheDir     string
	allowHTTP    bool
	usernameFile string
	passwordFile string
	caFile       string
	fleetKeys    []string // with oci://: the keys that sign fleet artifacts
	budget       budgetFlags

	mu     sync.Mutex
	mirror *gitsource.Local // the clone of a Git URL, made once per command
}

func (f *repoFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", ".", "fleet repository: a directory inside a Git checkout, a Git URL (https://, ssh://, file://), or a published fleet artifact (oci://registry/repository:tag)")
	fl.StringVar(&f.path, "path", "", "with a Git URL: the fleet's directory inside the repository")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "with a Git URL: where the clone is kept (default: the user cache directory)")
	fl.BoolVar(&f.allowHTTP, "allow-http", false, "with a Git URL: allow plain http://")
	fl.StringVar(&f.usernameFile, "git-username-file", "", "with a Git URL: file holding the user name")
	fl.StringVar(&f.passwordFile, "git-password-file", "", "with a Git URL: file holding the password or token")
	fl.StringVar(&f.caFile, "git-ca-file", "", "with a Git URL: extra CA certificates (PEM) for https")
	fl.StringArrayVar(&f.fleetKeys, "fleet-key", nil, "with oci://: a public key (PEM) that may sign the fleet artifact, as trust.fleetKeys; repeatable, required")
	f.budget.register(fl)
}

// isGitURL tells a remote repository from a directory: a URL scheme, or
// git's scp-like user@host:path.
func isGitURL(s string) bool {
	if strings.Contains(s, "://") {
		return true
	}
	at, colon := strings.Index(s, "@"), strings.Index(s, ":")
	return at > 0 && colon > at && !strings.Contains(s[:at], "/")
}

// remote clones (or updates) the Git URL into the cache once.
func (f *repoFlags) remote(ctx context.Context) (*gitsource.Local, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mirror != nil {
		return f.mirror, nil
	}
	dir := f.cacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory for the clone (use --cache-dir): %w", err)
		}
		dir = filepath.Join(base, "bootsync", "repos")
	}
	opts := gitsource.Access{AllowHTTP: f.allowHTTP, UsernameFile: f.usernameFile, PasswordFile: f.passwordFile,
		CAFile: f.caFile, NetworkTimeout: f.budget.netTimeout}.Options()
	local, err := gitsource.CloneForRead(ctx, f.repo, dir, opts...)
	if err != nil {
		return nil, err
	}
	f.mirror = local
	return local, nil
}

// fleetRevision is one loaded revision of the fleet repository.
type fleetRevision struct {
	Name string // commit id or "working tree"
	FS   fs.FS
	Repo *hostspec.Repo
}

// openRevision loads the fleet repository at rev, with opts for
// hostspec.Load; an empty rev means the files on disk (the working tree),
// so a PR checkout can be checked before it is committed.
func (f *repoFlags) openRevision(ctx context.Context, rev string, opts ...hostspec.LoadOption) (*fleetRevision, error) {
	side, err := f.revisionSide(ctx, rev)
	if err != nil {
		return nil, err
	}
	repo, err := side.Load(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &fleetRevision{Name: side.Name, FS: side.FS, Repo: repo}, nil
}

func (f *repoFlags) revisionFS(ctx context.Context, rev string) (fs.FS, string, error) {
	if ocisource.IsURL(f.repo) {
		return f.artifactRevision(ctx, rev)
	}
	if isGitURL(f.repo) {
		local, err := f.remote(ctx)
		if err != nil {
			return nil, "", err
		}
		if rev == "" {
			rev = "HEAD" // a remote has no working tree: its default branch
		}
		r, err := local.Revision(ctx, rev)
		if err != nil {
			return nil, "", err
		}
		if f.path == "" || f.path == "." {
			return r.FS, r.Commit, nil
		}
		sub, err := r.FS.Subtree(strings.Trim(f.path, "/"))
		if err != nil {
			return nil, "", fmt.Errorf("fleet repository %s at %s: --path: %w", gitsource.Redact(f.repo), rev, err)
		}
		return sub, r.Commit, nil
	}
	if f.path != "" {
		return nil, "", fmt.Errorf("--path applies to a Git URL; give the fleet directory as --repo")
	}
	dir, err := filepath.Abs(f.repo)
	if err != nil {
		return nil, "", fmt.Errorf("fleet repository %s: %w", f.repo, err)
	}
	if rev == "" {
		// What the commit of the checkout would hold: never .git, never a
		// path outside the repository, never a submodule.
		wt, err := gitsource.OpenWorkTree(ctx, dir)
		if err != nil {
			return nil, "", fmt.Errorf("fleet repository: %w", err)
		}
		return wt, workingTree, nil
	}
	local, err := gitsource.OpenLocal(ctx, dir)
	if err != nil {
		return nil, "", err
	}
	r, err := local.DirRevision(ctx, rev)
	if err != nil {
		return nil, "", err
	}
	return r.FS, r.Commit, nil
}

// reportLoadError prints every problem of a broken fleet repository to
// stderr, one per line, and turns it into exit status 1 with nothing on
// stdout: a broken repository never renders partially.
func reportLoadError(stderr io.Writer, err error) error {
	var list hostspec.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%d problem(s) found\n", len(list))
		return &exitError{code: 1}
	}
	return err
}
