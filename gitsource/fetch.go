package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bootsync/bootsync/internal/boundedread"
)

// networkError marks a failure of a step that talked to the server, for
// retry to classify.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// This package drives go-git's transport directly (an upload-pack session,
// packp requests, packfile.UpdateObjectStorage) instead of Remote.Fetch for
// two reasons: the ref advertisement of the change check is reused for the
// fetch, so a poll costs one request when nothing changed and two when
// something did; and a fetch into a shallow cache (only a pinned commit's
// does that; Poll replaces a shallow cache by a full clone before fetching)
// always tells the server the shallow commits (go-git's Fetch only does so
// when deepening), without which the server may leave out objects the new
// commit shares with history the cache does not have, e.g. a file restored
// by `git revert`.

// advertise opens an upload-pack session and reads the ref advertisement:
// over HTTP, exactly one GET request.
func (r *Remote) advertise(ctx context.Context) (transport.UploadPackSession, *packp.AdvRefs, error) {
	sess, err := r.session(ctx)
	if err != nil {
		return nil, nil, err
	}
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		_ = sess.Close()
		return nil, nil, &networkError{err}
	}
	return sess, ar, nil
}

func (r *Remote) session(ctx context.Context) (transport.UploadPackSession, error) {
	ep := *r.endpoint // go-git may rewrite an endpoint on redirects: use a copy
	var auth transport.AuthMethod
	var err error
	switch ep.Protocol {
	case "http", "https":
		if r.opts.caFile != "" {
			ca, err := boundedread.ReadFile(r.opts.caFile, boundedread.MaxLocalFile)
			if err != nil {
				return nil, &ServerTrustError{URL: r.display, Err: fmt.Errorf("read CA bundle: %w", err)}
			}
			ep.CaBundle = ca
		}
		auth, err = r.httpAuth()
	case "ssh":
		auth, err = r.sshAuth(&ep)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cli, err := r.transportFor(&ep)
	if err != nil {
		return nil, fmt.Errorf("git client for %s: %w", r.display, r.red.foreign(err))
	}
	sess, err := cli.NewUploadPackSession(&ep, auth)
	if err != nil {
		return nil, &networkError{err} // SSH connects here
	}
	return sess, nil
}

// readSecret reads a credential file; only a trailing newline is trimmed.
func (r *Remote) readSecret(what, file string) (string, error) {
	b, err := boundedread.ReadFile(file, boundedread.MaxLocalFile)
	if err != nil {
		return "", &AuthError{URL: r.display, Err: fmt.Errorf("read %s file: %w", what, err)}
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", &AuthError{URL: r.display, Err: fmt.Errorf("%s file %s is empty", what, file)}
	}
	return s, nil
}

func (r *Remote) httpAuth() (transport.AuthMethod, error) {
	switch {
	case r.opts.passwordFile != "":
		user := "git"
		if r.opts.usernameFile != "" {
			u, err := r.readSecret("username", r.opts.usernameFile)
			if err != nil {
				return nil, err
			}
			user = u
		}
		pass, err := r.readSecret("password", r.opts.passwordFile)
		if err != nil {
			return nil, err
		}
		r.red.addBasic(user, pass)
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	case r.opts.tokenFile != "":
		token, err := r.readSecret("token", r.opts.tokenFile)
		if err != nil {
			return nil, err
		}
		r.red.add(token)
		return &githttp.TokenAuth{Token: token}, nil
	}
	return nil, nil // go-git uses credentials in the URL, if any
}

// sshAuthWithTimeout is go-git's public key auth with a dial timeout.
type sshAuthWithTimeout struct {
	*gitssh.PublicKeys
	timeout time.Duration
}

func (a sshAuthWithTimeout) ClientConfig() (*gossh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = a.timeout
	return cfg, nil
}

func (r *Remote) sshAuth(ep *transport.Endpoint) (transport.AuthMethod, error) {
	pem, err := boundedread.ReadFile(r.opts.sshKeyFile, boundedread.MaxLocalFile)
	if err != nil {
		return nil, &AuthError{URL: r.display, Err: fmt.Errorf("read SSH key file: %w", err)}
	}
	signer, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		var missing *gossh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, &AuthError{URL: r.display, Err: fmt.Errorf("SSH key %s is protected by a passphrase, which an unattended agent cannot enter; use a key without one", r.opts.sshKeyFile)}
		}
		return nil, &AuthError{URL: r.display, Err: fmt.Errorf("parse SSH key %s: %w", r.opts.sshKeyFile, err)}
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	keys := &gitssh.PublicKeys{User: user, Signer: signer}
	if r.opts.insecureIgnoreHostKey {
		keys.HostKeyCallback = gossh.InsecureIgnoreHostKey()
	} else {
		// Check the file ourselves: go-git silently skips missing files.
		if _, err := boundedread.ReadFile(r.opts.knownHostsFile, boundedread.MaxLocalFile); err != nil {
			return nil, &ServerTrustError{URL: r.display, Err: fmt.Errorf("read known_hosts file: %w", err)}
		}
		db, err := gitssh.NewKnownHostsDb(r.opts.knownHostsFile)
		if err != nil {
			return nil, &ServerTrustError{URL: r.display, Err: fmt.Errorf("read known_hosts file %s: %w", r.opts.knownHostsFile, err)}
		}
		port := ep.Port
		if port == 0 {
			port = gitssh.DefaultPort
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	}
	return sshAuthWithTimeout{keys, r.opts.netTimeout}, nil
}

// resolve finds the followed ref in the advertisement: "HEAD", a full ref
// name, or a short name tried as a branch and then as a tag.
func (r *Remote) resolve(ar *packp.AdvRefs) (target, error) {
	want := r.opts.ref
	if want == "HEAD" {
		if ar.Head == nil {
			return target{}, &NotFoundError{URL: r.display, Ref: "HEAD", Err: errors.New("the server advertises no HEAD; configure a branch")}
		}
		name := plumbing.HEAD
		for _, v := range ar.Capabilities.Get(capability.SymRef) {
			if from, to, ok := strings.Cut(v, ":"); ok && from == "HEAD" {
				name = plumbing.ReferenceName(to)
			}
		}
		return target{ref: name, tip: *ar.Head, commit: *ar.Head}, nil
	}
	candidates := []string{want}
	if !strings.HasPrefix(want, "refs/") {
		candidates = []string{"refs/heads/" + want, "refs/tags/" + want}
	}
	for _, c := range candidates {
		if h, ok := ar.References[c]; ok {
			commit := h
			if p, ok := ar.Peeled[c]; ok {
				commit = p
			}
			return target{ref: plumbing.ReferenceName(c), tip: h, commit: commit}, nil
		}
	}
	return target{}, &NotFoundError{URL: r.display, Ref: "ref " + want, Err: errors.New("the server does not advertise it")}
}

// fetch downloads the objects of wants that the cache lacks. depth > 0 asks
// for a shallow history of that many commits.
func (r *Remote) fetch(ctx context.Context, sess transport.UploadPackSession, ar *packp.AdvRefs, wants []plumbing.Hash, depth int) error {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = wants
	haves, err := r.haves()
	if err != nil {
		return err
	}
	req.Haves = haves
	shallows, err := r.storage.Shallow()
	if err != nil {
		return &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("read shallow commits: %w", err)}
	}
	if depth > 0 || len(shallows) > 0 {
		if !ar.Capabilities.Supports(capability.Shallow) {
			if len(shallows) > 0 {
				return errNeedHistory
			}
			depth = 0 // the server cannot do shallow clones: clone it all
		} else {
			_ = req.Capabilities.Set(capability.Shallow)
			req.Shallows = shallows
		}
	}
	if depth > 0 {
		req.Depth = packp.DepthCommits(depth)
	}
	resp, err := sess.UploadPack(ctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil
	}
	if err != nil {
		return &networkError{err}
	}
	defer func() { _ = resp.Close() }()
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	err = packfile.UpdateObjectStorage(r.storage, pack)
	r.packs.refresh(filepath.Join(r.dir, "objects", "pack"))
	if errors.Is(err, packfile.ErrEmptyPackfile) {
		err = nil // nothing new; callers check that what they wanted arrived
	}
	if err != nil {
		return &networkError{err}
	}
	// Record the new shallow boundary only once the objects are stored.
	if depth > 0 && len(resp.Shallows)+len(resp.Unshallows) > 0 {
		next := make([]plumbing.Hash, 0, len(shallows)+len(resp.Shallows))
		seen := map[plumbing.Hash]bool{}
		for _, u := range resp.Unshallows {
			seen[u] = true
		}
		for _, h := range append(shallows, resp.Shallows...) {
			if !seen[h] {
				seen[h] = true
				next = append(next, h)
			}
		}
		if err := r.storage.SetShallow(next); err != nil {
			return fmt.Errorf("record shallow commits: %w", r.red.foreign(err))
		}
	}
	return nil
}

// haves lists the commits the cache's refs point to, which tells the server
// what not to send.
func (r *Remote) haves() ([]plumbing.Hash, error) {
	iter, err := r.storage.IterReferences()
	if err != nil {
		return nil, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("list references: %w", err)}
	}
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference || seen[ref.Hash()] || !r.has(ref.Hash()) {
			return nil
		}
		seen[ref.Hash()] = true
		out = append(out, ref.Hash())
		return nil
	})
	if err != nil {
		return nil, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("list references: %w", err)}
	}
	return out, nil
}

// fetchPinned brings a pinned commit into the cache: by asking for it
// directly when the server allows that, else by fetching every branch and
// tag (a v0 server only hands out what it advertises).
func (r *Remote) fetchPinned(ctx context.Context, commit plumbing.Hash) (bool, error) {
	sess, ar, err := r.advertise(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = sess.Close() }()
	if ar.Capabilities.Supports(capability.AllowReachableSHA1InWant) {
		depth := 0
		if r.isEmpty() {
			depth = 1 // a pin needs no ancestry
		}
		if err := r.fetch(ctx, sess, ar, []plumbing.Hash{commit}, depth); err != nil {
			return false, err
		}
		if err := r.setRef("refs/bootsync/pinned", commit); err != nil {
			return true, err
		}
	} else {
		refs := mirroredRefs(ar)
		var wants []plumbing.Hash
		seen := map[plumbing.Hash]bool{}
		for _, h := range refs {
			if !seen[h] && !r.has(h) {
				seen[h] = true
				wants = append(wants, h)
			}
		}
		if len(wants) > 0 {
			if err := r.fetch(ctx, sess, ar, wants, 0); err != nil {
				return false, err
			}
		}
		for name, h := range refs {
			if err := r.setRef(name, h); err != nil {
				return true, err
			}
		}
	}
	if !r.has(commit) {
		return true, &NotFoundError{URL: r.display, Ref: "commit " + commit.String(), Err: errors.New("no branch or tag of the repository contains it")}
	}
	return true, nil
}

// mirroredRefs are the branches and tags a full mirror keeps.
func mirroredRefs(ar *packp.AdvRefs) map[plumbing.ReferenceName]plumbing.Hash {
	out := map[plumbing.ReferenceName]plumbing.Hash{}
	for name, h := range ar.References {
		if strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/") {
			out[plumbing.ReferenceName(name)] = h
		}
	}
	return out
}

func (r *Remote) has(h plumbing.Hash) bool {
	return r.packs.contains(h) || r.storage.HasEncodedObject(h) == nil
}

// isShallow reports whether the cache lacks history (a depth-limited clone).
func (r *Remote) isShallow() bool {
	shallows, err := r.storage.Shallow()
	return err != nil || len(shallows) > 0
}

// isEmpty reports whether the cache has no refs yet (a fresh clone).
func (r *Remote) isEmpty() bool {
	iter, err := r.storage.IterReferences()
	if err != nil {
		return false
	}
	empty := true
	_ = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Name() != plumbing.HEAD {
			empty = false
			return storer.ErrStop
		}
		return nil
	})
	return empty
}

func (r *Remote) setRef(name plumbing.ReferenceName, h plumbing.Hash) error {
	if cur, err := r.storage.Reference(name); err == nil && cur.Type() == plumbing.HashReference && cur.Hash() == h {
		return nil // unchanged: a no-change poll writes nothing
	}
	if err := r.storage.SetReference(plumbing.NewHashReference(name, h)); err != nil {
		return fmt.Errorf("update cache ref %s: %w", name, r.red.foreign(err))
	}
	return nil
}

// peel returns the commit h points to, following annotated tags.
func (r *Remote) peel(h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := object.GetObject(r.storage, h)
		if err != nil {
			return nil, &CorruptCacheError{Dir: r.dir, Err: fmt.Errorf("read object %s the ref points to: %w", h, err)}
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("the ref points to a %s, not a commit", obj.Type())
		}
	}
	return nil, errors.New("the ref points to a chain of more than 10 tags")
}
