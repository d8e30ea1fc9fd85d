package gitsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Remote follows one ref of a remote Git repository through a local bare
// cache. It is safe for concurrent use; polls are serialized, also across
// processes sharing the cache dir (by a lock file).
//
// Cache layout: <cacheDir>/<first 16 hex digits of sha256(URL without
// credentials)>, a bare repository, plus a ".lock" file beside it.
type Remote struct {
	url      string              // as configured; may hold a password
	display  string              // url with credentials redacted
	endpoint *transport.Endpoint // parsed url
	opts     options
	dir      string // the bare cache
	red      *redactor

	httpOnce   sync.Once
	httpClient transport.Transport // go-git's HTTP transport with the network timeouts

	mu sync.Mutex // serializes Poll; guards everything below
	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	// maxPacks bounds the packs a cache collects (one per fetch) before
	// the next fetch clones afresh instead.
	maxPacks int
	repo     *git.Repository
	storage  *filesystem.Storage
	packs    packIndex // the cache's pack indexes, for fast existence checks
	// Memos of checks whose outcome depends only on content-addressed
	// input, so repeated polls of an unchanged ref cost nothing.
	sigMemo     map[plumbing.Hash]error
	ffMemo      map[[2]plumbing.Hash]bool
	checkedTree *object.Tree // last tree found complete in the cache
	stamp       cacheStamp   // the cache's state when this process last let go of it
}

// PollResult is the outcome of a successful Poll: a commit that passed every
// trust check configured for this host.
type PollResult struct {
	Commit  string // the commit the ref points to, full hex
	Ref     string // the resolved ref, e.g. refs/heads/main; the commit itself when pinned
	Changed bool   // Commit differs from the last applied commit
	Fetched bool   // objects were downloaded during this poll
	// Reset is set when Commit does not descend from the last applied
	// commit and was accepted only because WithAllowReset names it.
	Reset bool
	// Revision is Commit's tree, with WithSubPath applied.
	Revision *Revision
	// Recovered is set when the cache failed verification and was discarded
	// and cloned again during this poll; the agent should log it.
	Recovered *CorruptCacheError
}

// New returns a Remote for url: https://, http:// (only with WithAllowHTTP),
// ssh:// or scp-style (user@host:path), or file://. It validates the options
// against the transport (basic auth with an ssh URL is an error, and so is an
// ssh URL without a known_hosts file) but does no I/O: credential, key and CA
// files are read at every poll, so rotated files are picked up.
func New(url string, opts ...Option) (*Remote, error) {
	red := &redactor{}
	r := &Remote{url: url, opts: defaultOptions(), red: red, sleep: sleepContext, maxPacks: defaultMaxPacks}
	ep, scheme, err := parseURL(url)
	if err == nil {
		red.addBasic(ep.User, ep.Password)
	}
	r.display = red.redact(withoutFragment(url))
	if err != nil {
		return nil, fmt.Errorf("git remote %s: %w", r.display, red.foreign(err))
	}
	r.endpoint = ep
	for _, o := range opts {
		if err := o(&r.opts); err != nil {
			return nil, fmt.Errorf("git remote %s: %w", r.display, err)
		}
	}
	if err := r.opts.validate(scheme, ep); err != nil {
		return nil, fmt.Errorf("git remote %s: %w", r.display, err)
	}
	r.dir = filepath.Join(r.opts.cacheDir, cacheKey(ep))
	return r, nil
}

// parseURL accepts the URL forms git understands except plain local paths and
// the unauthenticated git:// protocol.
func parseURL(raw string) (*transport.Endpoint, string, error) {
	if raw == "" {
		return nil, "", errors.New("URL is empty")
	}
	scheme := ""
	if i := strings.Index(raw, "://"); i > 0 {
		scheme = strings.ToLower(raw[:i])
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, "", fmt.Errorf("parse URL: %w", err)
	}
	switch {
	case scheme == "" && ep.Protocol == "ssh": // scp-style user@host:path
		scheme = "ssh"
	case scheme == "":
		return nil, "", errors.New("not a Git URL: use https://, ssh://, user@host:path or file://")
	case scheme == "https", scheme == "http", scheme == "ssh", scheme == "file":
	default:
		return nil, "", fmt.Errorf("URL scheme %q is not supported: use https://, ssh:// or file://", scheme)
	}
	if scheme != "file" && ep.Host == "" {
		return nil, "", errors.New("URL has no host")
	}
	if scheme != "ssh" || strings.Contains(raw, "://") {
		// go-git would send a #fragment as part of the request path.
		if _, frag, ok := strings.Cut(raw, "#"); ok {
			what := "an empty #fragment"
			if frag != "" {
				what = "a #fragment (shown as #***)"
			}
			return nil, "", fmt.Errorf("URL has %s: Git URLs have none; remove it", what)
		}
	}
	return ep, scheme, nil
}

func (o *options) validate(scheme string, ep *transport.Endpoint) error {
	if o.cacheDir == "" {
		return errors.New("a cache dir is required (WithCacheDir)")
	}
	httpAuth := o.passwordFile != "" || o.tokenFile != ""
	sshAuth := o.sshKeyFile != "" || o.knownHostsFile != "" || o.insecureIgnoreHostKey
	switch scheme {
	case "http", "https":
		if scheme == "http" && !o.allowHTTP {
			return errors.New("plain http:// is refused unless explicitly allowed (allowHTTP)")
		}
		if scheme == "http" && o.caFile != "" {
			return errors.New("a CA bundle is given but the URL is plain http://")
		}
		if sshAuth {
			return errors.New("SSH key or host key options are given but the URL is " + scheme + "://")
		}
		if o.passwordFile != "" && o.tokenFile != "" {
			return errors.New("both basic auth files and a bearer token file are given; use one")
		}
		if httpAuth && (ep.User != "" || ep.Password != "") {
			return errors.New("credentials are given both in the URL and in files; use the files only")
		}
	case "ssh":
		if httpAuth || o.caFile != "" {
			return errors.New("HTTP credentials or a CA bundle are given but the URL is ssh")
		}
		if ep.Password != "" {
			return errors.New("passwords in ssh URLs are not supported; use an SSH key file")
		}
		if o.sshKeyFile == "" {
			return errors.New("an ssh URL needs an SSH key file (sshKeyFile)")
		}
		if o.knownHostsFile == "" && !o.insecureIgnoreHostKey {
			return errors.New("an ssh URL needs a known_hosts file to check the server's host key (knownHostsFile)")
		}
		if o.knownHostsFile != "" && o.insecureIgnoreHostKey {
			return errors.New("both a known_hosts file and insecureIgnoreHostKey are given; use one")
		}
	case "file":
		if httpAuth || sshAuth || o.caFile != "" {
			return errors.New("credentials are given but the URL is file://")
		}
	}
	return nil
}

// withoutFragment replaces a URL's #fragment, which may hold anything,
// for display.
func withoutFragment(url string) string {
	if before, _, ok := strings.Cut(url, "#"); ok && strings.Contains(before, "://") {
		return before + "#***"
	}
	return url
}

// cacheKey names a remote's cache by its URL without credentials, so the
// same repository reached with rotated credentials keeps its cache.
func cacheKey(ep *transport.Endpoint) string {
	id := strings.ToLower(ep.Protocol) + "://"
	if ep.Protocol == "ssh" {
		id += ep.User + "@"
	}
	id += strings.ToLower(ep.Host) + ":" + strconv.Itoa(ep.Port) + "/" + strings.TrimPrefix(ep.Path, "/")
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:16]
}

// String describes the remote without credentials.
func (r *Remote) String() string {
	return fmt.Sprintf("gitsource.Remote{url: %s, ref: %s, path: %s}", r.display, r.opts.ref, r.opts.subPath)
}

// Format prints String for every verb (%v, %+v, %#v, %s), so printing a
// Remote never shows a password embedded in its URL.
func (r *Remote) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }

// URL returns the remote's URL with credentials redacted.
func (r *Remote) URL() string { return r.display }

// CacheDir returns the directory of the remote's bare cache.
func (r *Remote) CacheDir() string { return r.dir }

// Close releases the cache. The Remote can be polled again afterwards.
func (r *Remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeCache()
}

// defaultMaxPacks bounds the packs a cache collects, one per fetch, before
// the next fetch clones afresh: object lookups go through every pack, and
// go-git's RepackObjects is no cheaper than a clone (measured: 17s and
// 360 MB for 10,000 commits, against 4s for a clone).
const defaultMaxPacks = 256

// errNeedHistory reports that the shallow cache will not do: a fast-forward
// check reached its boundary, or the ref moved. Poll then clones the full
// history.
var errNeedHistory = errors.New("the cache is shallow and lacks the history needed")

// Poll checks the remote ref and returns the commit it points to, once that
// commit passed the host's trust checks.
//
// Change detection comes first: one ref advertisement (ls-remote; over HTTP
// exactly one request). When the cache already holds the advertised commit,
// nothing else is read from the server. Otherwise the missing objects are
// fetched into the cache (over HTTP one more request). The first clone is
// shallow (depth 1) when there is nothing to check ancestry against: an
// empty cache and nothing applied yet, so a new host starts quickly. The
// first time the ref moves after that, the shallow cache is replaced by a
// full clone; from then on fetches are incremental and every fast-forward
// check is decided from the complete history: correctness beats speed, and
// incremental fetches into a full clone are also far cheaper for the server.
//
// lastApplied is the commit the host applied last, "" on the first run.
// Refusals are typed: *NotFastForwardError (the ref no longer descends from
// lastApplied), *UnsignedCommitError and *UntrustedSignatureError (with
// WithCommitKeys). Network failures are retried with backoff when transient
// and returned as *TransientError when they persist; *AuthError,
// *ServerTrustError and *NotFoundError are permanent and not retried.
// A corrupt cache is discarded and cloned again (PollResult.Recovered).
// ReasonOf gives a short reason for any of them.
func (r *Remote) Poll(ctx context.Context, lastApplied string) (*PollResult, error) {
	lastApplied = strings.ToLower(strings.TrimSpace(lastApplied))
	if lastApplied != "" && !isCommitID(lastApplied) {
		return nil, fmt.Errorf("poll %s: last applied commit %q is not a full 40-hex commit id", r.display, lastApplied)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	unlock, err := lockFile(ctx, r.dir+".lock")
	if err != nil {
		return nil, fmt.Errorf("poll %s: lock cache: %w", r.display, err)
	}
	defer unlock()
	if r.repo != nil && readStamp(r.dir) != r.stamp {
		_ = r.closeCache() // changed by another process: reopen and verify
	}
	defer func() {
		if r.repo != nil {
			r.stamp = readStamp(r.dir)
		}
	}()

	var recovered *CorruptCacheError
	refetched := false
	for {
		res, err := r.poll(ctx, lastApplied)
		var corrupt *CorruptCacheError
		switch {
		case errors.As(err, &corrupt) && recovered == nil:
			recovered = corrupt
			if err := r.discardCache(); err != nil {
				return nil, fmt.Errorf("poll %s: %w", r.display, &CorruptCacheError{Dir: r.dir, Err: r.red.foreign(err)})
			}
			continue
		case errors.Is(err, errNeedHistory) && !refetched:
			refetched = true
			if err := r.discardCache(); err != nil {
				return nil, fmt.Errorf("poll %s: replace shallow cache by a full clone: %w", r.display, r.red.foreign(err))
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("poll %s (ref %s): %w", r.display, r.opts.ref, err)
		}
		res.Recovered = recovered
		return res, nil
	}
}

// target is what the followed ref points to.
type target struct {
	ref    plumbing.ReferenceName // remote ref name; "" for a pinned commit
	tip    plumbing.Hash          // the ref's value (a tag object for annotated tags)
	commit plumbing.Hash          // the peeled commit when the server said it, else tip
}

func (r *Remote) poll(ctx context.Context, lastApplied string) (*PollResult, error) {
	if err := r.openCache(); err != nil {
		return nil, err
	}
	pinned := isCommitID(r.opts.ref)
	var (
		tgt     target
		fetched bool
		err     error
	)
	if pinned {
		tgt, fetched, err = r.fetchPinnedTarget(ctx)
	} else {
		tgt, fetched, err = r.fetchRefTarget(ctx, lastApplied)
	}
	if err != nil {
		return nil, err
	}

	commit, err := r.peel(tgt.tip)
	if err != nil {
		return nil, err
	}
	ref := string(tgt.ref)
	if pinned {
		ref = commit.Hash.String()
	} else if err := r.setRef(localRefName(tgt.ref), tgt.tip); err != nil {
		return nil, err
	}
	res := &PollResult{Commit: commit.Hash.String(), Ref: ref, Changed: commit.Hash.String() != lastApplied, Fetched: fetched}

	if err := r.verifySignature(commit); err != nil {
		return nil, err
	}
	if res.Changed && lastApplied != "" && !pinned {
		if res.Commit == r.opts.allowReset {
			res.Reset = true
		} else {
			ok, err := r.descends(ctx, commit.Hash, plumbing.NewHash(lastApplied))
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, &NotFastForwardError{Ref: ref, From: lastApplied, To: res.Commit}
			}
		}
	}
	if res.Revision, err = r.revision(commit); err != nil {
		return nil, err
	}
	return res, nil
}

// fetchPinnedTarget makes sure the cache holds the commit the ref pins,
// fetching it when it does not.
func (r *Remote) fetchPinnedTarget(ctx context.Context) (tgt target, fetched bool, err error) {
	h := plumbing.NewHash(r.opts.ref)
	tgt = target{tip: h, commit: h}
	if r.has(h) {
		return tgt, false, nil
	}
	err = r.retry(ctx, "fetch commit "+r.opts.ref, func(ctx context.Context) error {
		f, err := r.fetchPinned(ctx, h)
		fetched = fetched || f
		return err
	})
	return tgt, fetched, err
}

// fetchRefTarget resolves the ref on the remote and fetches its tip when
// the cache does not hold it yet.
func (r *Remote) fetchRefTarget(ctx context.Context, lastApplied string) (tgt target, fetched bool, err error) {
	err = r.retry(ctx, "list references", func(ctx context.Context) error {
		sess, ar, err := r.advertise(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = sess.Close() }()
		tgt, err = r.resolve(ar)
		if err != nil {
			return err
		}
		if r.has(tgt.tip) {
			return nil // no change since the cache was filled: nothing else to read
		}
		depth := 0
		if r.isEmpty() && (lastApplied == "" || tgt.commit.String() == lastApplied) {
			depth = 1 // nothing to verify ancestry against: a shallow first clone will do
		} else if r.isShallow() || len(r.packs) > r.maxPacks {
			// The first change after a shallow first clone: replace the
			// cache by a full clone. Fetches into a shallow repository
			// cost the server about ten times more (it must walk the
			// client's whole tree rather than use bitmaps), and every
			// host of the fleet makes one per change; with the full
			// history, fast-forward checks are always decidable too.
			// Every fetch adds a pack; a fresh clone also compacts a
			// cache that has collected too many.
			return errNeedHistory
		}
		if err := r.fetch(ctx, sess, ar, []plumbing.Hash{tgt.tip}, depth); err != nil {
			return err
		}
		fetched = true
		return nil
	})
	return tgt, fetched, err
}

// localRefName is where the cache keeps a remote ref: under the same name,
// except a detached remote HEAD.
func localRefName(remote plumbing.ReferenceName) plumbing.ReferenceName {
	if remote == plumbing.HEAD {
		return "refs/bootsync/HEAD"
	}
	return remote
}

// retry runs a network step, retrying transient failures with exponential
// backoff and full jitter, and turns failures into typed errors.
func (r *Remote) retry(ctx context.Context, what string, step func(context.Context) error) error {
	var last error
	for attempt := 1; ; attempt++ {
		err := step(ctx)
		if err == nil {
			return nil
		}
		var netErr *networkError
		if !errors.As(err, &netErr) {
			return err // already typed, or a local failure
		}
		cause := fmt.Errorf("%s: %w", what, r.red.foreign(netErr.err))
		if timedOut(ctx, netErr.err) {
			// A server that stalled for the whole timeout is not asked
			// again in this poll: the next poll will.
			return &TimeoutError{URL: r.display, Timeout: r.opts.netTimeout, Err: cause}
		}
		switch classify(ctx, netErr.err) {
		case classCanceled:
			return cause
		case classAuth:
			return &AuthError{URL: r.display, Err: cause}
		case classServerTrust:
			return &ServerTrustError{URL: r.display, Err: cause}
		case classNotFound:
			return &NotFoundError{URL: r.display, Err: cause}
		case classPermanent:
			return cause
		}
		last = cause
		if attempt >= r.opts.attempts {
			return &TransientError{URL: r.display, Attempts: attempt, Err: last}
		}
		if err := r.sleep(ctx, backoff(attempt, r.opts.baseDelay, r.opts.maxDelay)); err != nil {
			return fmt.Errorf("%s: %w (after: %w)", what, err, last)
		}
	}
}
