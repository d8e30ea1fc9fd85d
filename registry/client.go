package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	containerstypes "go.podman.io/image/v5/types"
)

// DefaultTimeout bounds one registry operation (a resolution, a signature
// fetch), retries included.
const DefaultTimeout = 2 * time.Minute

// Client talks to OCI registries for one bootsync process. Reuse it: it keeps
// one authenticated transport per repository (so a warm tag resolution is a
// single HEAD request) and a small content-addressed cache of manifest kinds.
// It is safe for concurrent use.
type Client struct {
	puller   *remote.Puller
	insecure map[string]bool
	timeout  time.Duration
	cache    *digestCache
	// sys locates registries.conf (nil: mirrors and remaps are off);
	// skipVerify holds the hosts it marks insecure (TLS not verified).
	sys        *containerstypes.SystemContext
	skipVerify *sync.Map
	remoteOpts []remote.Option // as the puller's, for writes (bootsync publish)
}

type config struct {
	keychain    authn.Keychain
	authRoot    *string
	insecure    []string
	retry       RetryPolicy
	timeout     time.Duration
	transport   http.RoundTripper
	userAgent   string
	cacheLimits int
	netTimeout  time.Duration

	registriesConf *containerstypes.SystemContext
}

// Option configures a Client. Options validate their arguments; New returns
// the first error.
type Option func(*config) error

// WithKeychain sets where credentials come from. The default is
// NewFileKeychain(HostAuthFiles("/")): the files bootc reads, then podman's
// and docker's.
func WithKeychain(kc authn.Keychain) Option {
	return func(c *config) error {
		if kc == nil {
			return errors.New("WithKeychain: nil keychain")
		}
		c.keychain = kc
		return nil
	}
}

// WithAuthRoot reads the default credential files under root instead of
// "/" (tests, or an agent running against a mounted host).
func WithAuthRoot(root string) Option {
	return func(c *config) error {
		if root == "" {
			return errors.New("WithAuthRoot: empty root")
		}
		c.authRoot = &root
		return nil
	}
}

// WithInsecureRegistries lists registries (host or host:port) reached over
// plain HTTP. For test registries on 127.0.0.1 only; never for production.
func WithInsecureRegistries(hosts ...string) Option {
	return func(c *config) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/ ") {
				return fmt.Errorf("WithInsecureRegistries: %q is not a host[:port]", h)
			}
			if _, err := name.NewRegistry(h, name.StrictValidation); err != nil {
				return fmt.Errorf("WithInsecureRegistries: %q: %w", h, err)
			}
		}
		c.insecure = append(c.insecure, hosts...)
		return nil
	}
}

// WithRetry sets the retry policy (default DefaultRetryPolicy).
func WithRetry(p RetryPolicy) Option {
	return func(c *config) error {
		if err := p.validate(); err != nil {
			return fmt.Errorf("WithRetry: %w", err)
		}
		c.retry = p
		return nil
	}
}

// WithTimeout bounds each operation, retries included (default DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %s is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithTransport replaces the base HTTP transport (the retrying layer still
// wraps it). For tests, and for custom TLS roots.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *config) error {
		if rt == nil {
			return errors.New("WithTransport: nil transport")
		}
		c.transport = rt
		return nil
	}
}

// WithUserAgent sets the User-Agent sent to registries.
func WithUserAgent(ua string) Option {
	return func(c *config) error {
		if ua == "" || strings.ContainsAny(ua, "\r\n") {
			return fmt.Errorf("WithUserAgent: %q is not a valid user agent", ua)
		}
		c.userAgent = ua
		return nil
	}
}

// New returns a Client.
func New(opts ...Option) (*Client, error) {
	cfg := config{retry: DefaultRetryPolicy, timeout: DefaultTimeout, userAgent: "bootsync", cacheLimits: 1024}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, fmt.Errorf("registry client: %w", err)
		}
	}
	if cfg.keychain != nil && cfg.authRoot != nil {
		return nil, errors.New("registry client: WithKeychain and WithAuthRoot are exclusive")
	}
	if cfg.keychain == nil {
		root := "/"
		if cfg.authRoot != nil {
			root = *cfg.authRoot
		}
		cfg.keychain = NewFileKeychain(HostAuthFiles(root))
	}
	skipVerify := &sync.Map{}
	base := cfg.transport
	if base == nil {
		base = newSkipVerifyTransport(defaultBaseTransport(cfg.netTimeout), skipVerify)
	}
	rt := transport.NewUserAgent(newRetryingTransport(base, cfg.retry), cfg.userAgent)
	remoteOpts := remoteOptions(rt, cfg.keychain)
	puller, err := remote.NewPuller(remoteOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	c := &Client{
		puller:     puller,
		insecure:   map[string]bool{},
		timeout:    cfg.timeout,
		cache:      newDigestCache(cfg.cacheLimits),
		sys:        cfg.registriesConf,
		skipVerify: skipVerify,
		remoteOpts: remoteOpts,
	}
	for _, h := range cfg.insecure {
		c.insecure[strings.ToLower(h)] = true
	}
	return c, nil
}

// parse parses ref strictly and marks registries configured as insecure.
func (c *Client) parse(ref string) (name.Reference, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if c.insecure[strings.ToLower(r.Context().RegistryStr())] {
		return name.ParseReference(ref, name.StrictValidation, name.Insecure)
	}
	return r, nil
}

func (c *Client) parseDigest(op, ref string) (name.Digest, error) {
	r, err := c.parse(ref)
	if err != nil {
		return name.Digest{}, err
	}
	d, ok := r.(name.Digest)
	if !ok {
		return name.Digest{}, &Error{Op: op, Ref: ref, Reason: ReasonInvalidReference,
			Err: errors.New("a digest reference (repository@sha256:…) is required")}
	}
	return d, nil
}

func (c *Client) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Resolved is what a reference resolved to.
type Resolved struct {
	// Repository is registry host[:port] and path, without tag or digest.
	Repository string `json:"repository"`
	// Digest is the digest of the top-level manifest the reference names:
	// for a multi-arch image, the index. This is what bootsync verifies and
	// switches bootc to.
	Digest string `json:"digest"`
	// MediaType of that manifest; empty when the reference was already
	// pinned and no request was made.
	MediaType string `json:"mediaType,omitempty"`
	// IsIndex is true for an OCI image index or Docker manifest list.
	IsIndex bool `json:"isIndex,omitempty"`
	// Endpoint is the repository that answered (a registries.conf mirror,
	// or the primary); empty when no request was made.
	Endpoint string `json:"endpoint,omitempty"`
}

// Reference is "repository@digest", the exact image to verify and deploy.
func (r *Resolved) Reference() string { return r.Repository + "@" + r.Digest }

// Resolve returns the digest ref names. A digest reference needs no request
// at all; a tag costs one HEAD request on a warm client (the first contact
// with a repository adds the registry's /v2/ auth handshake), and a GET only
// when the registry does not answer HEAD (405/501, or no digest header).
// Never resolve again after verifying: deploy Resolved.Reference().
func (c *Client) Resolve(ctx context.Context, ref string) (*Resolved, error) {
	r, err := c.parse(ref)
	if err != nil {
		return nil, err
	}
	if d, ok := r.(name.Digest); ok {
		res := &Resolved{Repository: d.Context().Name(), Digest: d.DigestStr()}
		if mt, ok := c.cache.mediaType(d.DigestStr()); ok {
			res.MediaType, res.IsIndex = string(mt), mt.IsIndex()
		}
		return res, nil
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	desc, ep, err := onEndpoints(ctx, c, "resolve", r, func(ctx context.Context, ep endpoint) (*v1.Descriptor, error) {
		return c.head(ctx, ep.ref)
	})
	if err != nil {
		return nil, err
	}
	if err := checkBootable(desc.MediaType); err != nil {
		return nil, &Error{Op: "resolve", Ref: ref, Reason: ReasonUnsupported, Err: err}
	}
	c.cache.setMediaType(desc.Digest.String(), desc.MediaType)
	return &Resolved{
		Repository: r.Context().Name(),
		Digest:     desc.Digest.String(),
		MediaType:  string(desc.MediaType),
		IsIndex:    desc.MediaType.IsIndex(),
		Endpoint:   ep.Name(),
	}, nil
}

// head asks for r's manifest descriptor: HEAD, or GET where the registry
// does not answer HEAD.
func (c *Client) head(ctx context.Context, r name.Reference) (*v1.Descriptor, error) {
	desc, err := c.puller.Head(ctx, r)
	if headUnsupported(err) {
		var got *remote.Descriptor
		got, err = c.puller.Get(ctx, r)
		if err == nil {
			desc = &got.Descriptor
		}
	}
	return desc, err
}

// ResolvePinned is Resolve for an image whose digest is already known (from
// the reference itself or from bootsync.lock): it makes no request. An
// empty digest resolves ref.
func (c *Client) ResolvePinned(ctx context.Context, ref, digest string) (*Resolved, error) {
	if digest == "" {
		return c.Resolve(ctx, ref)
	}
	pinned, err := PinnedReference(ref, digest)
	if err != nil {
		return nil, err
	}
	return c.Resolve(ctx, pinned)
}

// headUnsupported reports a HEAD that a GET may answer: the registry does
// not implement HEAD on manifests, or its answer lacked the digest header.
func headUnsupported(err error) bool {
	if err == nil {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode == http.StatusMethodNotAllowed || terr.StatusCode == http.StatusNotImplemented
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "HEAD ") && strings.Contains(msg, "did not include") ||
		strings.Contains(msg, "response did not include Content-Length")
}

func checkBootable(mt types.MediaType) error {
	switch mt {
	case types.OCIManifestSchema1, types.DockerManifestSchema2, types.OCIImageIndex, types.DockerManifestList:
		return nil
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return fmt.Errorf("Docker schema 1 manifest (%s): bootc cannot boot it; rebuild and push the image", mt)
	}
	return fmt.Errorf("manifest media type %q is not an image or image index", mt)
}

// digestCache remembers manifest media types and platform choices by
// digest. Entries never go stale (digests name content); the cache is
// emptied when it reaches its limit.
type digestCache struct {
	mu      sync.Mutex
	limit   int
	kinds   map[string]types.MediaType
	indexes map[string]*indexPlatforms
}

func newDigestCache(limit int) *digestCache {
	return &digestCache{limit: limit, kinds: map[string]types.MediaType{}, indexes: map[string]*indexPlatforms{}}
}

func (dc *digestCache) mediaType(digest string) (types.MediaType, bool) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	mt, ok := dc.kinds[digest]
	return mt, ok
}

func (dc *digestCache) setMediaType(digest string, mt types.MediaType) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.kinds) >= dc.limit {
		clear(dc.kinds)
	}
	dc.kinds[digest] = mt
}

func (dc *digestCache) platforms(digest string) (*indexPlatforms, bool) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	p, ok := dc.indexes[digest]
	return p, ok
}

func (dc *digestCache) setPlatforms(digest string, p *indexPlatforms) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.indexes) >= dc.limit {
		clear(dc.indexes)
	}
	dc.indexes[digest] = p
}

// Ping proves the registry serving ref answers and accepts this host's
// credentials: one HEAD request for the manifest (at the first endpoint
// that answers, registries.conf mirrors first), never answered from a
// cache. The agent's management-plane health check uses it after an update.
func (c *Client) Ping(ctx context.Context, ref string) error {
	r, err := c.parse(ref)
	if err != nil {
		return err
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	_, _, err = onEndpoints(ctx, c, "ping", r, func(ctx context.Context, ep endpoint) (*v1.Descriptor, error) {
		return c.head(ctx, ep.ref)
	})
	return err
}
