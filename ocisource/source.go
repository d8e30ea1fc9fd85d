package ocisource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bootsync/bootsync/gitsource"
	"github.com/bootsync/bootsync/policy"
	"github.com/bootsync/bootsync/registry"
)

// Scheme prefixes a fleet source URL that names an OCI artifact.
const Scheme = "oci://"

// IsURL reports whether s names an OCI fleet source (oci://…).
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseURL checks an oci:// URL and returns the reference it names:
// registry/repository:tag or registry/repository@sha256:…, the tag or
// digest given explicitly (a fleet source has no default tag).
func ParseURL(url string) (string, error) {
	ref, ok := strings.CutPrefix(url, Scheme)
	if !ok {
		return "", fmt.Errorf("%q is not an oci:// URL", url)
	}
	if _, err := registry.ParseReference(ref); err != nil {
		return "", fmt.Errorf("oci URL %s: %w", url, err)
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if !strings.ContainsAny(last, ":@") || !strings.Contains(ref, "/") {
		return "", fmt.Errorf("oci URL %s: name the registry, the repository and a tag or digest, as in oci://registry.example.com/ops/fleet:main", url)
	}
	return ref, nil
}

// Source follows one tag (or digest) of a fleet artifact repository, like
// gitsource.Remote follows a branch: it implements the agent's Source
// (Poll, Ping). It is safe for concurrent use; polls are serialized, also
// across processes sharing the cache dir (by a lock file).
type Source struct {
	ref      string // registry/repository:tag or @digest
	repo     string // registry/repository
	pinned   string // the digest when ref is a digest reference
	opts     options
	verifier *policy.Verifier
	trust    string

	mu    sync.Mutex
	st    *state
	stamp fileStamp
	mem   *current // the artifact last returned, with its files open
	gate  *backoff
}

type current struct {
	digest string
	fs     *FS
}

// New returns a Source for url (oci://registry/repository:tag). It reads
// the fleet keys but makes no request.
func New(url string, opts ...Option) (*Source, error) {
	ref, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	s := &Source{ref: ref, opts: defaultOptions()}
	for _, o := range opts {
		if err := o(&s.opts); err != nil {
			return nil, fmt.Errorf("fleet source %s: %w", url, err)
		}
	}
	switch {
	case s.opts.cacheDir == "":
		return nil, fmt.Errorf("fleet source %s: a cache dir is required (WithCacheDir)", url)
	case s.opts.reg == nil:
		return nil, fmt.Errorf("fleet source %s: a registry client is required (WithRegistry)", url)
	case len(s.opts.keyFiles) == 0:
		return nil, fmt.Errorf("fleet source %s: no fleet key is configured (trust.fleetKeys): a fleet artifact is only read once its signature verified", url)
	}
	r, _ := registry.ParseReference(ref)
	s.repo = r.Context().Name()
	if d, ok := strings.CutPrefix(r.Identifier(), "sha256:"); ok {
		s.pinned = "sha256:" + d
	}
	if s.verifier, err = policy.NewVerifier(policy.WithKeyFiles(s.opts.keyFiles...), policy.WithRequireSignatures(true)); err != nil {
		return nil, fmt.Errorf("fleet source %s: %w", url, err)
	}
	if s.trust, err = trustID(s.opts.keyFiles); err != nil {
		return nil, fmt.Errorf("fleet source %s: %w", url, err)
	}
	s.gate = newBackoff(s.opts.interval)
	return s, nil
}

// URL is the source's oci:// URL.
func (s *Source) URL() string { return Scheme + s.ref }

// Ping proves the registry answers for the fleet artifact: one manifest
// HEAD (the management-plane health check).
func (s *Source) Ping(ctx context.Context) error {
	if err := s.opts.reg.Ping(ctx, s.ref); err != nil {
		return &sourceError{fmt.Errorf("ping %s: %w", s.URL(), err)}
	}
	return nil
}

// Poll returns the commit the tag names once its artifact passed every
// check: one manifest HEAD when nothing changed (none for a digest URL).
// A new digest costs its signature (two GETs), its manifest (one GET) and,
// unless its generation is refused, its content (one GET).
//
// lastApplied is the commit the host applied last ("" on the first run).
// Errors carry a reason (ReasonOf; the agent reports "oci-<reason>"):
// signature refusals (no-signature, bad-signature, wrong-identity, …),
// rollback, unknown-generation, unverified-commit, invalid-artifact,
// too-large, backoff, and the registry's (unavailable, rate-limited, …).
func (s *Source) Poll(ctx context.Context, lastApplied string) (*gitsource.PollResult, error) {
	lastApplied = strings.ToLower(strings.TrimSpace(lastApplied))
	if lastApplied != "" && !commitID.MatchString(lastApplied) {
		return nil, fmt.Errorf("poll %s: last applied commit %q is not a full 40-hex commit id", s.URL(), lastApplied)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gate.check(s.opts.now()); err != nil {
		return nil, &sourceError{fmt.Errorf("poll %s: %w", s.URL(), err)}
	}
	ctx, thr := registry.ObserveThrottling(ctx)
	res, err := s.poll(ctx, lastApplied)
	s.gate.done(s.opts.now(), err, thr)
	if err != nil {
		return nil, &sourceError{fmt.Errorf("poll %s: %w", s.URL(), err)}
	}
	return res, nil
}

func (s *Source) poll(ctx context.Context, lastApplied string) (*gitsource.PollResult, error) {
	if err := os.MkdirAll(s.opts.cacheDir, 0o700); err != nil {
		return nil, &stateError{err}
	}
	unlock, err := lockDir(ctx, s.opts.cacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	digest := s.pinned
	if digest == "" {
		res, err := s.opts.reg.Resolve(ctx, s.ref)
		if err != nil {
			return nil, err
		}
		digest = res.Digest
	}
	art, err := s.artifact(ctx, st, digest, lastApplied)
	if err != nil {
		return nil, err
	}
	if s.opts.requireVerified && art.CommitSignature != SignatureVerified {
		return nil, &UnverifiedCommitError{Commit: art.Commit}
	}
	reset, err := checkRollback(st, art, lastApplied, s.opts.allowReset)
	if err != nil {
		return nil, err
	}
	fsys, fetched, err := s.content(ctx, st, digest, art)
	if err != nil {
		return nil, err
	}
	return &gitsource.PollResult{
		Commit: art.Commit, Ref: s.ref, Changed: art.Commit != lastApplied, Fetched: fetched, Reset: reset,
		Revision: &gitsource.Revision{Commit: art.Commit, FS: fsys},
	}, nil
}

// artifact returns the verified metadata of repo@digest: from the state
// when this digest's signature already verified with the same keys, else
// by checking its signature first and only then reading its manifest.
func (s *Source) artifact(ctx context.Context, st *state, digest, lastApplied string) (*Artifact, error) {
	if a, ok := st.verified(s.repo, digest, s.trust); ok {
		return a, nil
	}
	ref := s.repo + "@" + digest
	if _, err := s.verifier.Verify(ctx, s.opts.reg, ref); err != nil {
		return nil, err
	}
	m, err := s.opts.reg.FetchManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	a, err := ParseManifest(m.Raw)
	if err != nil {
		return nil, &InvalidArtifactError{Ref: ref, Err: err}
	}
	st.remember(s.repo, digest, s.trust, a, lastApplied)
	if err := s.save(st); err != nil {
		return nil, err
	}
	return a, nil
}

// checkRollback applies the anti-rollback rule; reset is true when the
// artifact was accepted only because allowReset names it.
func checkRollback(st *state, a *Artifact, lastApplied, allowReset string) (reset bool, err error) {
	if lastApplied == "" || a.Commit == lastApplied {
		return false, nil
	}
	if a.Commit == allowReset {
		return true, nil
	}
	prev, ok := st.generation(lastApplied)
	switch {
	case !ok:
		return false, &RollbackError{Applied: lastApplied, Commit: a.Commit, Generation: a.Generation, Unknown: true}
	case a.Generation <= prev:
		return false, &RollbackError{Applied: lastApplied, AppliedGen: prev, Commit: a.Commit, Generation: a.Generation}
	}
	return false, nil
}

// content returns the artifact's files: open from the last poll, kept on
// disk by an earlier one, or downloaded now (fetched).
func (s *Source) content(ctx context.Context, st *state, digest string, a *Artifact) (*FS, bool, error) {
	if s.mem != nil && s.mem.digest == digest {
		return s.mem.fs, false, nil
	}
	if k, ok := st.Content[s.repo]; ok && k.Digest == a.Content.Digest.String() {
		if fsys, err := openKept(s.opts.cacheDir, k, a); err == nil {
			s.mem = &current{digest: digest, fs: fsys}
			return fsys, false, nil
		}
		// Damaged or removed: download it again.
	}
	k, err := fetchContent(ctx, s.opts.reg, s.repo, a, s.opts.cacheDir, s.opts.limit)
	if err != nil {
		return nil, false, err
	}
	fsys, err := OpenTar(tarPath(s.opts.cacheDir, k.Digest), a.CommitTime)
	if err != nil {
		return nil, false, err
	}
	st.Content[s.repo] = k
	if err := s.save(st); err != nil {
		return nil, false, err
	}
	st.prune(s.opts.cacheDir)
	s.mem = &current{digest: digest, fs: fsys}
	return fsys, true, nil
}

// fileStamp identifies a version of the state file, so it is read again
// only when another process changed it.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}
}

func (s *Source) state() (*state, error) {
	path := filepath.Join(s.opts.cacheDir, stateFile)
	if stamp := stampOf(path); s.st != nil && stamp == s.stamp {
		return s.st, nil
	}
	st, err := loadState(s.opts.cacheDir)
	if err != nil {
		return nil, err
	}
	s.st, s.stamp = st, stampOf(path)
	return st, nil
}

func (s *Source) save(st *state) error {
	if err := st.save(s.opts.cacheDir); err != nil {
		return err
	}
	s.st, s.stamp = st, stampOf(filepath.Join(s.opts.cacheDir, stateFile))
	return nil
}

// errLocked is returned when the cache stays locked by another process
// until the poll's context ends.
var errLocked = errors.New("the fleet source cache is locked by another process")
