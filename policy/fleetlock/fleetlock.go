// Package fleetlock is a client of the FleetLock protocol, the reboot
// coordination protocol Zincati uses, served by coreos/airlock (etcd) and
// poseidon/fleetlock (Kubernetes). The server is a counting semaphore per
// group: a host takes a slot before rebooting into an update (PreReboot) and
// gives it back once the new boot is verified healthy (SteadyState).
//
// A host whose update failed keeps its slot: it does not call SteadyState
// (and the agent must not either until an operator or a later healthy boot
// sorts it out). The occupied slot is what stops the rest of the fleet from
// rebooting into the same bad update, exactly as the servers intend.
//
// Each call is a single attempt; "not now" (any status but 200) is an
// *Error carrying the server's kind and value, and the agent retries on a
// later pass (see Backoff).
package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultGroup is the group of hosts that do not name one, as in Zincati.
const DefaultGroup = "default"

// groupPattern is the group syntax the protocol specifies.
var groupPattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// Error is a refusal from the server: any answer but 200 OK.
type Error struct {
	Op         string // "pre-reboot" or "steady-state"
	URL        string // the endpoint
	StatusCode int
	// Kind and Value are the server's {"kind": …, "value": …} error body:
	// a machine-friendly type (for metrics; airlock sends "failed_lock"
	// when all slots are taken) and a human-friendly description. When the
	// body is not such an object, Kind is empty and Value holds the start
	// of the body.
	Kind  string
	Value string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("fleetlock %s at %s: HTTP %d %s", e.Op, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Kind != "" && e.Value != "":
		msg += ": " + e.Kind + ": " + e.Value
	case e.Kind != "":
		msg += ": " + e.Kind
	case e.Value != "":
		msg += ": " + e.Value
	}
	return msg
}

// Option configures a Client.
type Option func(*options) error

type options struct {
	httpClient *http.Client
	allowHTTP  bool
	timeout    time.Duration
	userAgent  string
}

// WithHTTPClient sets the HTTP client (for custom CAs or proxies). The
// client is copied and never follows redirects: the protocol's header exists
// so that a redirected request is not taken for a real one.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("HTTP client is nil")
		}
		o.httpClient = c
		return nil
	}
}

// WithAllowHTTP allows a plain http:// URL for a server that is not on a
// loopback address. Lock requests are not secret, but over plain HTTP anyone
// on the path can grant or deny reboots.
func WithAllowHTTP() Option {
	return func(o *options) error {
		o.allowHTTP = true
		return nil
	}
}

// WithTimeout bounds each request (default 30s), in addition to the
// caller's context.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("timeout %s must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// Client talks to one FleetLock server as one host.
type Client struct {
	preReboot   string // endpoint URLs
	steadyState string
	group       string
	id          string
	http        *http.Client
	timeout     time.Duration
	userAgent   string
}

// New returns a client for the server at baseURL (the endpoints are
// baseURL/v1/pre-reboot and baseURL/v1/steady-state), for the host id (see
// MachineID) in group (empty means "default").
//
// baseURL must be https://, or http:// on a loopback address or with
// WithAllowHTTP; it may have a path but no query, fragment or credentials
// (it comes from the fleet repository, which is no place for secrets).
func New(baseURL, group, id string, opts ...Option) (*Client, error) {
	o := options{timeout: 30 * time.Second, userAgent: "bootsync"}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configure fleetlock client: %w", err)
		}
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("fleetlock url %q: %w", baseURL, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("fleetlock url %q: want an https:// URL", baseURL)
	case u.User != nil:
		return nil, fmt.Errorf("fleetlock url %s: credentials in the URL are not supported", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("fleetlock url %q: must not have a query or fragment", baseURL)
	case u.Scheme == "http" && !o.allowHTTP && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("fleetlock url %q: plain http:// is only allowed for loopback addresses unless explicitly allowed", baseURL)
	}
	if group == "" {
		group = DefaultGroup
	}
	if !groupPattern.MatchString(group) {
		return nil, fmt.Errorf("fleetlock group %q: must match %s", group, groupPattern)
	}
	if strings.TrimSpace(id) == "" {
		return nil, errors.New("fleetlock client id is empty")
	}

	hc := &http.Client{}
	if o.httpClient != nil {
		copied := *o.httpClient
		hc = &copied
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c := &Client{group: group, id: id, http: hc, timeout: o.timeout, userAgent: o.userAgent}
	c.preReboot = u.JoinPath("v1", "pre-reboot").String()
	c.steadyState = u.JoinPath("v1", "steady-state").String()
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Group is the reboot group the client locks in.
func (c *Client) Group() string { return c.group }

// ID is the client id the server sees.
func (c *Client) ID() string { return c.id }

// PreReboot asks for a reboot slot. nil means the host holds a slot (again,
// if it already held one) and may reboot now; any error means not now.
func (c *Client) PreReboot(ctx context.Context) error {
	return c.post(ctx, "pre-reboot", c.preReboot)
}

// SteadyState releases the host's slot, if it holds one. Call it only
// after a boot that passed its health checks.
func (c *Client) SteadyState(ctx context.Context) error {
	return c.post(ctx, "steady-state", c.steadyState)
}

type clientParams struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

type requestBody struct {
	ClientParams clientParams `json:"client_params"`
}

// maxErrorBody bounds how much of a refusal is read.
const maxErrorBody = 64 << 10

func (c *Client) post(parent context.Context, op, endpoint string) error {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	body, err := json.Marshal(requestBody{ClientParams: clientParams{ID: c.id, Group: c.group}})
	if err != nil {
		return fmt.Errorf("fleetlock %s: encode request: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fleetlock %s at %s: %w", op, endpoint, err)
	}
	req.Header.Set("fleet-lock-protocol", "true")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var nerr net.Error
		if parent.Err() == nil && (ctx.Err() != nil || errors.As(err, &nerr) && nerr.Timeout()) {
			err = fmt.Errorf("the server did not answer within %s: %w", c.timeout, err)
		}
		return fmt.Errorf("fleetlock %s at %s: %w", op, endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return parseError(op, endpoint, resp.StatusCode, raw)
}

func parseError(op, endpoint string, status int, raw []byte) *Error {
	e := &Error{Op: op, URL: endpoint, StatusCode: status}
	var body struct {
		Kind  *string `json:"kind"`
		Value *string `json:"value"`
	}
	// airlock sends the JSON with a text/plain content type (http.Error),
	// so the body is tried as JSON whatever the header says.
	if err := json.Unmarshal(bytes.TrimSpace(raw), &body); err == nil && body.Kind != nil {
		e.Kind = *body.Kind
		if body.Value != nil {
			e.Value = *body.Value
		}
		return e
	}
	text := strings.TrimSpace(string(raw))
	if len(text) > 512 {
		text = text[:512] + "…"
	}
	e.Value = text
	return e
}

// Backoff spaces out retries of a refused PreReboot: Min doubling per
// attempt up to Max, with ±20% jitter so a fleet waiting on the same lock
// does not retry in lockstep.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is Zincati-like pacing for lock retries.
var DefaultBackoff = Backoff{Min: 30 * time.Second, Max: 10 * time.Minute}

// Delay returns the wait before retry number attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(d))
	return d + jitter
}
