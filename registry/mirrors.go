package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/types"
)

// Reasons of endpoint selection (registries.conf).
const (
	ReasonBlocked        Reason = "blocked"         // registries.conf blocks the registry: no request was made
	ReasonRegistriesConf Reason = "registries-conf" // registries.conf (or a drop-in) cannot be read or parsed
)

// WithRegistriesConf makes the client follow the host's
// containers-registries.conf(5) like bootc's pulls do (containers/image's
// own sysregistriesv2): the system file, its registries.conf.d drop-ins and
// root's user file, or the file CONTAINERS_REGISTRIES_CONF (or the older
// REGISTRIES_CONFIG_PATH) names. System paths are read under root ("/" on
// a host). Without this option the client contacts only the registry a
// reference names.
func WithRegistriesConf(root string) Option {
	return func(c *config) error {
		if root == "" {
			return errors.New("WithRegistriesConf: empty root")
		}
		sys := &types.SystemContext{}
		if root != "/" {
			sys.RootForImplicitAbsolutePaths = root
		}
		// sysregistriesv2 reads CONTAINERS_REGISTRIES_CONF itself.
		if _, ok := os.LookupEnv("CONTAINERS_REGISTRIES_CONF"); !ok {
			sys.SystemRegistriesConfPath = os.Getenv("REGISTRIES_CONFIG_PATH")
		}
		c.registriesConf = sys
		return nil
	}
}

// ReloadRegistriesConf makes the next request read registries.conf again
// (the agent calls it once per pass, so an edit takes effect without a
// restart, as it does for bootc).
func (c *Client) ReloadRegistriesConf() {
	if c.sys != nil {
		sysregistriesv2.InvalidateCache()
	}
}

// endpoint is one place an image is fetched from: a mirror or the primary
// registry, with the reference rewritten for it.
type endpoint struct {
	ref     name.Reference
	mirror  bool
	blocked error // registries.conf blocks this endpoint: never contacted
	// skippedMirrors (on the primary) counts the registry's mirrors that
	// registries.conf does not allow for this kind of reference.
	skippedMirrors int
}

// Name is the endpoint's repository, "mirror.example.com:5000/os/base".
func (e endpoint) Name() string { return e.ref.Context().Name() }

// endpoints returns where ref is fetched from, in the order bootc's pull
// tries them: for a digest reference every mirror allowed for digests, for
// a tag only the mirrors allowed for tags, and the primary last.
func (c *Client) endpoints(op string, ref name.Reference) ([]endpoint, error) {
	primary := endpoint{ref: ref}
	if c.sys == nil {
		return []endpoint{primary}, nil
	}
	logical := containersName(ref)
	reg, err := sysregistriesv2.FindRegistry(c.sys, logical)
	if err != nil {
		return nil, c.confError(op, ref, err)
	}
	if reg == nil {
		return []endpoint{primary}, nil
	}
	named, err := reference.ParseNamed(logical + refSuffix(ref))
	if err != nil {
		return nil, &Error{Op: op, Ref: ref.String(), Reason: ReasonInvalidReference, Err: err}
	}
	sources, err := reg.PullSourcesFromReference(named)
	if err != nil {
		return nil, c.confError(op, ref, err)
	}
	out := make([]endpoint, 0, len(sources))
	for i, src := range sources {
		ep, err := c.sourceEndpoint(op, src, i < len(sources)-1)
		if err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	// Mirrors left out for this kind of reference, for the error message.
	out[len(out)-1].skippedMirrors = len(reg.Mirrors) - (len(sources) - 1)
	return out, nil
}

// sourceEndpoint turns a pull source into an endpoint: blocked when its
// own registry entry says so (containers/image checks every endpoint, so a
// blocked primary may still be served by its mirrors), plain HTTP and no
// TLS verification when registries.conf marks it insecure.
func (c *Client) sourceEndpoint(op string, src sysregistriesv2.PullSource, mirror bool) (endpoint, error) {
	s := src.Reference.String()
	own, err := sysregistriesv2.FindRegistry(c.sys, src.Reference.Name())
	if err != nil {
		return endpoint{}, c.confError(op, nil, err)
	}
	insecure := src.Endpoint.Insecure || (own != nil && own.Insecure)
	host := reference.Domain(src.Reference)
	if insecure {
		c.skipVerify.Store(strings.ToLower(host), true)
	}
	opts := []name.Option{name.StrictValidation}
	if insecure || c.insecure[strings.ToLower(host)] {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(s, opts...)
	if err != nil {
		return endpoint{}, &Error{Op: op, Ref: s, Reason: ReasonRegistriesConf,
			Err: fmt.Errorf("registries.conf rewrites the reference to %q: %w", s, err)}
	}
	ep := endpoint{ref: r, mirror: mirror}
	if own != nil && own.Blocked {
		ep.blocked = &Error{Op: op, Ref: s, Reason: ReasonBlocked,
			Err:  fmt.Errorf("registry %s is blocked in one of %s", own.Prefix, sysregistriesv2.ConfigurationSourceDescription(c.sys)),
			hint: "no request was made; unblock it in registries.conf or name an allowed mirror"}
	}
	return ep, nil
}

func (c *Client) confError(op string, ref name.Reference, err error) error {
	r := ""
	if ref != nil {
		r = ref.String()
	}
	return &Error{Op: op, Ref: r, Reason: ReasonRegistriesConf,
		Err: fmt.Errorf("read registries configuration %s: %w", sysregistriesv2.ConfigurationSourceDescription(c.sys), err)}
}

// containersName is ref's repository as containers/image spells it
// (go-containerregistry calls Docker Hub index.docker.io).
func containersName(ref name.Reference) string {
	repo := ref.Context()
	if repo.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + repo.RepositoryStr()
	}
	return repo.Name()
}

func refSuffix(ref name.Reference) string {
	if d, ok := ref.(name.Digest); ok {
		return "@" + d.DigestStr()
	}
	return ":" + ref.Identifier()
}

// onEndpoints runs fetch against ref's endpoints in pull order and returns
// the first success with the endpoint that gave it. When every endpoint
// fails, the error is the primary's (or, when the primary only had no such
// thing, the first failure that was not "not found"), naming what each
// other endpoint answered.
func onEndpoints[T any](ctx context.Context, c *Client, op string, ref name.Reference, fetch func(context.Context, endpoint) (T, error)) (T, endpoint, error) {
	var zero T
	eps, err := c.endpoints(op, ref)
	if err != nil {
		return zero, endpoint{}, err
	}
	var fails []*Error
	for _, ep := range eps {
		if ep.blocked != nil {
			fails = append(fails, ep.blocked.(*Error))
			continue
		}
		v, err := fetch(ctx, ep)
		if err == nil {
			return v, ep, nil
		}
		fails = append(fails, classify(op, ep.ref.String(), c.timeout, err).(*Error))
		if ctx.Err() != nil {
			break
		}
	}
	return zero, endpoint{}, endpointsFailed(op, ref, eps, fails)
}

// endpointsFailed picks the error to report when no endpoint answered.
func endpointsFailed(op string, ref name.Reference, eps []endpoint, fails []*Error) error {
	if len(fails) == 1 && len(eps) == 1 && eps[0].skippedMirrors == 0 {
		return fails[0]
	}
	pick := fails[len(fails)-1]
	if pick.Reason == ReasonNotFound {
		for _, f := range fails {
			if f.Reason != ReasonNotFound {
				pick = f
				break
			}
		}
	}
	out := &Error{Op: op, Ref: ref.String(), StatusCode: pick.StatusCode, Reason: pick.Reason, hint: pick.hint}
	parts := make([]string, 0, len(fails))
	for i, f := range fails {
		what := "primary"
		if eps[i].mirror {
			what = "mirror"
		}
		detail := string(f.Reason)
		if f.StatusCode != 0 {
			detail += fmt.Sprintf(" (HTTP %d)", f.StatusCode)
		}
		if f.Err != nil {
			detail += ": " + f.Err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", what, eps[i].Name(), detail))
	}
	out.Err = errors.New(strings.Join(parts, "; "))
	if last := eps[len(eps)-1]; last.skippedMirrors > 0 && isTag(ref) {
		out.hint = joinHint(out.hint, "registries.conf uses this registry's mirrors for digest references only (mirror-by-digest-only or pull-from-mirror = \"digest-only\"), so the tag was looked up at the primary alone; pin the image by digest (bootsync lock) to fetch it through a mirror")
	}
	return out
}

func isTag(ref name.Reference) bool { _, ok := ref.(name.Tag); return ok }

func joinHint(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
