package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/internal/boundedread"
)

// Git says where the fleet repository is and how the job writes to it.
type Git struct {
	URL    string
	Branch string // the branch the agents follow (default main)
	Path   string // the fleet's directory inside the repository ("" for the root)
	// AllowHTTP permits plain http:// URLs.
	AllowHTTP    bool
	UsernameFile string
	PasswordFile string
	CAFile       string
	// SigningKeyFile is an armored OpenPGP private key (not passphrase
	// protected) that signs every commit: hosts with trust.commitKeys
	// only apply signed commits.
	SigningKeyFile string
	AuthorName     string
	AuthorEmail    string
	// PushBranch, when set, receives the decision instead of Branch, for
	// a pull request opened from it; Branch is left as it is.
	PushBranch string
}

// Trailer marks the job's commits; the value says what the commit did.
const Trailer = "Bootsync-Rollout"

// clone is the fleet repository checked out at the branch's tip.
type clone struct {
	dir  string
	repo *git.Repository
	head *object.Commit
	auth transport.AuthMethod
	ca   []byte
	cfg  Git
}

func (g Git) branch() string {
	if g.Branch == "" {
		return "main"
	}
	return g.Branch
}

func (g Git) auth() (transport.AuthMethod, []byte, error) {
	u, err := url.Parse(g.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet repository URL: %w", err)
	}
	if u.Scheme == "http" && !g.AllowHTTP {
		return nil, nil, fmt.Errorf("fleet repository %s: plain http:// needs --allow-http", gitsource.Redact(g.URL))
	}
	var ca []byte
	if g.CAFile != "" {
		if ca, err = boundedread.ReadFile(g.CAFile, 1<<20); err != nil {
			return nil, nil, fmt.Errorf("read CA file: %w", err)
		}
	}
	if g.PasswordFile == "" {
		return nil, ca, nil
	}
	pass, err := boundedread.ReadFile(g.PasswordFile, 64<<10)
	if err != nil {
		return nil, nil, fmt.Errorf("read password file: %w", err)
	}
	user := []byte("git")
	if g.UsernameFile != "" {
		if user, err = boundedread.ReadFile(g.UsernameFile, 64<<10); err != nil {
			return nil, nil, fmt.Errorf("read username file: %w", err)
		}
	}
	return &githttp.BasicAuth{Username: strings.TrimSpace(string(user)), Password: strings.TrimSpace(string(pass))}, ca, nil
}

// cloneRepo clones the branch into a new directory under tmp.
func cloneRepo(ctx context.Context, cfg Git, tmp string) (*clone, error) {
	auth, ca, err := cfg.auth()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "rollout-")
	if err != nil {
		return nil, fmt.Errorf("clone fleet repository: %w", err)
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: cfg.URL, Auth: auth, CABundle: ca,
		ReferenceName: plumbing.NewBranchReferenceName(cfg.branch()), SingleBranch: true, Tags: git.NoTags})
	if err != nil {
		return nil, fmt.Errorf("clone fleet repository %s (branch %s): %w", gitsource.Redact(cfg.URL), cfg.branch(), err)
	}
	ref, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("clone fleet repository: %w", err)
	}
	head, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("clone fleet repository: %w", err)
	}
	return &clone{dir: dir, repo: repo, head: head, auth: auth, ca: ca, cfg: cfg}, nil
}

// repoPath is a fleet-relative path as a path in the repository.
func (c *clone) repoPath(p string) string {
	return path.Join(strings.Trim(c.cfg.Path, "/"), p)
}

// history lists the commits that changed file, newest first, up to max.
func (c *clone) history(file string, max int) ([]*object.Commit, error) {
	name := c.repoPath(file)
	iter, err := c.repo.Log(&git.LogOptions{From: c.head.Hash, FileName: &name})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", name, err)
	}
	defer iter.Close()
	var out []*object.Commit
	for len(out) < max {
		cm, err := iter.Next()
		if err != nil {
			break
		}
		out = append(out, cm)
	}
	return out, nil
}

// includes says whether commit is the wave's commit or descends from it.
func (c *clone) includes(wave *object.Commit) func(string) bool {
	memo := map[string]bool{}
	return func(commit string) bool {
		if v, ok := memo[commit]; ok {
			return v
		}
		ok := false
		if commit == wave.Hash.String() {
			ok = true
		} else if plumbing.IsHash(commit) {
			if cm, err := c.repo.CommitObject(plumbing.NewHash(commit)); err == nil {
				ok, _ = wave.IsAncestor(cm)
			}
		}
		memo[commit] = ok
		return ok
	}
}

// fileAt reads a fleet file at a commit; ok is false when it is absent.
func fileAt(cm *object.Commit, name string) ([]byte, bool, error) {
	f, err := cm.File(name)
	if errors.Is(err, object.ErrFileNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	s, err := f.Contents()
	return []byte(s), true, err
}

// write replaces (or, with data nil, removes) a fleet file in the work tree.
func (c *clone) write(file string, data []byte) error {
	p := filepath.Join(c.dir, filepath.FromSlash(c.repoPath(file)))
	if data == nil {
		return os.Remove(p)
	}
	return os.WriteFile(p, data, 0o644)
}

// commit commits the work tree's changes to file with msg.
func (c *clone) commit(file, msg string, now time.Time) (plumbing.Hash, error) {
	wt, err := c.repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := wt.Add(c.repoPath(file)); err != nil {
		if _, err := wt.Remove(c.repoPath(file)); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("stage %s: %w", file, err)
		}
	}
	sig := &object.Signature{Name: c.cfg.AuthorName, Email: c.cfg.AuthorEmail, When: now}
	if sig.Name == "" {
		sig.Name = "bootsync rollout"
	}
	if sig.Email == "" {
		sig.Email = "bootsync-rollout@localhost"
	}
	opts := &git.CommitOptions{Author: sig, Committer: sig}
	if c.cfg.SigningKeyFile != "" {
		if opts.SignKey, err = readSigningKey(c.cfg.SigningKeyFile); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	h, err := wt.Commit(msg, opts)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit: %w", err)
	}
	return h, nil
}

func readSigningKey(file string) (*openpgp.Entity, error) {
	data, err := boundedread.ReadFile(file, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", file, err)
	}
	for _, e := range ring {
		if e.PrivateKey != nil && !e.PrivateKey.Encrypted {
			return e, nil
		}
	}
	return nil, fmt.Errorf("signing key %s: no private key without a passphrase", file)
}

// errLostRace is a push the server refused because the branch moved since
// the clone: another run (or a person) committed first.
var errLostRace = errors.New("the branch moved while this run decided")

// push pushes the commit fast-forward only: the server refuses it when the
// branch is no longer at the commit this run decided on.
func (c *clone) push(ctx context.Context, h plumbing.Hash) (string, error) {
	target := c.cfg.branch()
	if c.cfg.PushBranch != "" {
		target = c.cfg.PushBranch
	}
	spec := config.RefSpec(h.String() + ":" + plumbing.NewBranchReferenceName(target).String())
	err := c.repo.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: c.auth, CABundle: c.ca})
	if err == nil {
		return target, nil
	}
	if c.cfg.PushBranch == "" && c.moved(ctx) {
		return "", errLostRace
	}
	return "", fmt.Errorf("push to %s of %s: %w", target, gitsource.Redact(c.cfg.URL), err)
}

// moved says whether the remote branch is no longer at the clone's head.
func (c *clone) moved(ctx context.Context) bool {
	rem, err := c.repo.Remote("origin")
	if err != nil {
		return false
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: c.auth, CABundle: c.ca})
	if err != nil {
		return false
	}
	for _, r := range refs {
		if r.Name() == plumbing.NewBranchReferenceName(c.cfg.branch()) {
			return r.Hash() != c.head.Hash
		}
	}
	return false
}
