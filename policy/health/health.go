// Package health runs the post-update health checks of a host: the checks
// declared in the fleet repository (systemd, http, tcp, command) and the
// built-in management-plane checks (see ManagementPlane).
//
// # Verdict
//
// All checks run concurrently. Each check is attempted, every Interval,
// until one of these happens:
//
//   - an attempt succeeds: the check passes (a single success is enough);
//   - an attempt fails, the grace deadline has passed and the check has
//     been attempted at least Retries+1 times: the check fails.
//
// So during the grace period after a boot (update.grace, passed to Run as a
// deadline) a check may keep failing while services come up, and after it
// a check still gets Retries further chances Interval apart, so one bad
// sample never rolls a host back. With no grace (a zero deadline) a check
// is simply tried Retries+1 times. Every attempt is bounded by the check's
// Timeout: a hung command is killed with its whole process group, an HTTP
// server that never answers or a connect that is never accepted times out.
//
// The report is healthy when no Required check failed; failed checks that
// are not required are reported but do not change the verdict.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

// Kind names the type of a check.
type Kind string

// Check kinds.
const (
	KindSystemd Kind = "systemd" // systemctl is-active UNIT
	KindHTTP    Kind = "http"    // GET URL answers 2xx (and contains Expect)
	KindTCP     Kind = "tcp"     // host:port accepts a connection
	KindCommand Kind = "command" // argv exits 0
	KindProbe   Kind = "probe"   // a function supplied by the agent (management plane)
)

// Check is one health check ready to run. Build checks with FromSpec,
// FromSpecs, ProbeCheck or ManagementPlane; the policy fields may be
// adjusted afterwards.
type Check struct {
	Name     string
	Kind     Kind
	Target   string // what is checked, for reports: a unit, URL, address or command line
	Required bool   // a failure rolls the update back
	Timeout  time.Duration
	Interval time.Duration
	Retries  int
	Source   hostspec.Source // where the fleet repo declared it; empty for built-in checks

	unit   string
	url    string
	expect string
	addr   string
	argv   []string
	probe  Probe
}

// Probe is a check supplied as a function, such as "the Git remote answers
// ls-remote". It must return when ctx is done; Run stops waiting for it at
// the check's Timeout regardless.
type Probe func(ctx context.Context) error

// Result is the outcome of one check.
type Result struct {
	Name     string            `json:"name"`
	Kind     Kind              `json:"kind"`
	Target   string            `json:"target"`
	Required bool              `json:"required"`
	OK       bool              `json:"ok"`
	Attempts int               `json:"attempts"`
	Duration hostspec.Duration `json:"duration"` // from the first attempt to the verdict
	// Error is the last failed attempt's error, also kept when a later
	// attempt passed, so a slow start is visible in status.
	Error string `json:"error,omitempty"`
	// Output is the last attempt's output (command and systemctl output, or
	// the start of an HTTP response body), truncated to a few KiB.
	Output string          `json:"output,omitempty"`
	Source hostspec.Source `json:"source"`
}

// Report is the verdict over a set of checks.
type Report struct {
	// OK is true when no required check failed.
	OK       bool              `json:"ok"`
	Results  []Result          `json:"results"` // sorted by Name
	Started  time.Time         `json:"started"`
	Duration hostspec.Duration `json:"duration"`
}

// Failed returns the required checks that failed.
func (r Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Required && !res.OK {
			out = append(out, res)
		}
	}
	return out
}

// Err returns nil for a healthy report, or an error naming every required
// check that failed, with its last error.
func (r Report) Err() error {
	failed := r.Failed()
	if len(failed) == 0 {
		return nil
	}
	msgs := make([]string, len(failed))
	for i, res := range failed {
		msgs[i] = fmt.Sprintf("%s (%s %s) failed after %d attempts: %s", res.Name, res.Kind, res.Target, res.Attempts, res.Error)
	}
	return fmt.Errorf("health: %d required check(s) failed: %s", len(failed), strings.Join(msgs, "; "))
}

// Clock is the time source of a Runner. Tests inject one to run long grace
// periods instantly.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or returns ctx.Err() as soon as ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Option configures a Runner.
type Option func(*options) error

type options struct {
	systemctl   string
	httpClient  *http.Client
	clock       Clock
	outputLimit int
	killDelay   time.Duration
}

// DefaultOutputLimit is how much output a Result keeps per check.
const DefaultOutputLimit = 4 << 10

// WithSystemctl sets the systemctl executable used by systemd checks
// (default "systemctl", looked up in PATH).
func WithSystemctl(path string) Option {
	return func(o *options) error {
		if path == "" {
			return errors.New("systemctl path is empty")
		}
		o.systemctl = path
		return nil
	}
}

// WithHTTPClient sets the client used by http checks. The default client
// does not reuse connections between attempts, so every attempt sees the
// service as a new client would.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("HTTP client is nil")
		}
		o.httpClient = c
		return nil
	}
}

// WithClock sets the clock used for intervals and the grace deadline.
// Per-attempt timeouts always use real time.
func WithClock(c Clock) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("clock is nil")
		}
		o.clock = c
		return nil
	}
}

// WithOutputLimit sets how many bytes of output a Result keeps (the end of
// a command's output, the start of an HTTP body). Default DefaultOutputLimit.
func WithOutputLimit(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("output limit %d must be positive", n)
		}
		o.outputLimit = n
		return nil
	}
}

// Runner runs health checks. It is safe for concurrent use.
type Runner struct {
	opts options
}

// NewRunner returns a Runner configured by opts.
func NewRunner(opts ...Option) (*Runner, error) {
	o := options{
		systemctl:   "systemctl",
		clock:       realClock{},
		outputLimit: DefaultOutputLimit,
		// After a command was killed or exited, how long to wait for
		// processes that escaped its process group to close its output.
		killDelay: time.Second,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configure health checks: %w", err)
		}
	}
	if o.httpClient == nil {
		o.httpClient = defaultHTTPClient()
	}
	return &Runner{opts: o}, nil
}

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A fresh connection per attempt: a kept-alive connection to a process
	// that has since been replaced would test the wrong thing.
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr}
}

// Run runs checks until each has a verdict (see the package documentation)
// and returns the report. graceUntil is the end of the grace period, usually
// boot time plus update.grace; the zero time means no grace.
//
// An error means there is no verdict: the checks are invalid (duplicate
// names, a check not built by this package) or ctx was cancelled, in which
// case the partial report is returned with it. A cancelled run must not be
// taken as a failed update.
func (r *Runner) Run(ctx context.Context, checks []Check, graceUntil time.Time) (Report, error) {
	seen := map[string]bool{}
	for i, c := range checks {
		if c.Name == "" {
			return Report{}, fmt.Errorf("run health checks: check %d has no name", i+1)
		}
		if seen[c.Name] {
			return Report{}, fmt.Errorf("run health checks: duplicate check name %q", c.Name)
		}
		seen[c.Name] = true
		if err := c.validateRunnable(); err != nil {
			return Report{}, fmt.Errorf("run health checks: check %q: %w", c.Name, err)
		}
	}

	report := Report{Started: r.opts.clock.Now(), Results: make([]Result, len(checks))}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { report.Results[i] = r.runCheck(ctx, c, graceUntil) })
	}
	wg.Wait()
	report.Duration = hostspec.Duration(r.opts.clock.Now().Sub(report.Started))
	sort.Slice(report.Results, func(i, j int) bool { return report.Results[i].Name < report.Results[j].Name })
	report.OK = len(report.Failed()) == 0
	if err := ctx.Err(); err != nil {
		report.OK = false
		return report, fmt.Errorf("run health checks: interrupted before a verdict: %w", err)
	}
	return report, nil
}

func (r *Runner) runCheck(ctx context.Context, c Check, graceUntil time.Time) (res Result) {
	res = Result{Name: c.Name, Kind: c.Kind, Target: c.Target, Required: c.Required, Source: c.Source}
	clock := r.opts.clock
	start := clock.Now()
	defer func() { res.Duration = hostspec.Duration(clock.Now().Sub(start)) }()
	for {
		res.Attempts++
		output, err := r.attempt(ctx, c)
		if ctx.Err() != nil {
			// Interrupted: this attempt says nothing about the host.
			if res.Error == "" {
				res.Error = "interrupted: " + ctx.Err().Error()
			}
			return res
		}
		res.Output = output
		if err == nil {
			res.OK = true
			return res
		}
		res.Error = err.Error()
		if res.Attempts > c.Retries && !clock.Now().Before(graceUntil) {
			return res
		}
		if clock.Sleep(ctx, c.Interval) != nil {
			return res
		}
	}
}

// attempt runs one attempt bounded by the check's timeout.
func (r *Runner) attempt(ctx context.Context, c Check) (string, error) {
	actx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var (
		output string
		err    error
	)
	switch c.Kind {
	case KindSystemd:
		output, err = r.checkSystemd(actx, c)
	case KindHTTP:
		output, err = r.checkHTTP(actx, c)
	case KindTCP:
		err = checkTCP(actx, c)
	case KindCommand:
		output, err = r.runCommand(actx, c.argv)
	case KindProbe:
		err = runProbe(actx, c.probe)
	default:
		err = fmt.Errorf("unknown check kind %q", c.Kind)
	}
	// Socket deadlines and the context timer fire independently for the same
	// instant, so judge by the clock rather than by actx.Err() alone.
	if deadline, _ := actx.Deadline(); err != nil && ctx.Err() == nil && !time.Now().Before(deadline) {
		err = &TimeoutError{Timeout: c.Timeout, Err: err}
	}
	return output, err
}

// TimeoutError is an attempt that did not finish within the check's Timeout.
type TimeoutError struct {
	Timeout time.Duration
	Err     error // what the attempt reported when it was stopped
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s: %v", e.Timeout, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// runProbe calls probe and gives up waiting when ctx is done, even if the
// probe does not honour ctx (its goroutine then finishes on its own).
func runProbe(ctx context.Context, probe Probe) error {
	done := make(chan error, 1)
	go func() { done <- probe(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("probe did not return: %w", ctx.Err())
	}
}
