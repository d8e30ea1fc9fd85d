package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bootsync/bootsync/hostspec"
)

// MaxHTTPBody is how much of an HTTP response body an http check reads when
// looking for its expected substring.
const MaxHTTPBody = 1 << 20

// FromSpec turns a health check from a resolved HostSpec into a Check,
// validating it: exactly one of systemd, http, tcp and command; an http(s)
// URL; a host:port address; a non-empty command; expect only with http.
// A zero Timeout or Interval takes the hostspec default.
func FromSpec(hc hostspec.HealthCheck) (Check, error) {
	c := Check{
		Name:     hc.Name,
		Required: hc.Required,
		Timeout:  time.Duration(hc.Timeout),
		Interval: time.Duration(hc.Interval),
		Retries:  hc.Retries,
		Source:   hc.Source,
	}
	fail := func(format string, args ...any) (Check, error) {
		return Check{}, fmt.Errorf("health check %q (%s): %s", hc.Name, hc.Source, fmt.Sprintf(format, args...))
	}
	if hc.Name == "" {
		return fail("name is empty")
	}
	var kinds []string
	if hc.Systemd != "" {
		kinds = append(kinds, "systemd")
		c.Kind, c.unit, c.Target = KindSystemd, hc.Systemd, hc.Systemd
	}
	if hc.HTTP != "" {
		kinds = append(kinds, "http")
		c.Kind, c.url, c.expect, c.Target = KindHTTP, hc.HTTP, hc.Expect, hc.HTTP
	}
	if hc.TCP != "" {
		kinds = append(kinds, "tcp")
		c.Kind, c.addr, c.Target = KindTCP, hc.TCP, hc.TCP
	}
	if len(hc.Command) > 0 {
		kinds = append(kinds, "command")
		c.Kind, c.argv, c.Target = KindCommand, append([]string(nil), hc.Command...), commandLine(hc.Command)
	}
	switch len(kinds) {
	case 0:
		return fail("needs one of systemd, http, tcp or command")
	case 1:
	default:
		return fail("sets %s; a check must have exactly one type", strings.Join(kinds, " and "))
	}
	if hc.Expect != "" && c.Kind != KindHTTP {
		return fail("expect is only valid for http checks")
	}
	if msg := c.checkTarget(); msg != "" {
		return fail("%s", msg)
	}
	if c.Timeout < 0 || c.Interval < 0 {
		return fail("timeout and interval must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = hostspec.DefaultCheckTimeout
	}
	if c.Interval == 0 {
		c.Interval = hostspec.DefaultCheckInterval
	}
	if c.Retries < 0 {
		return fail("retries %d must not be negative", c.Retries)
	}
	return c, nil
}

// checkTarget says what is wrong with the check's target for its kind ("" when
// nothing is), and redacts credentials from an http target.
func (c *Check) checkTarget() string {
	switch c.Kind {
	case KindSystemd:
		if strings.HasPrefix(c.unit, "-") || strings.ContainsAny(c.unit, " \t\n/") {
			return fmt.Sprintf("systemd unit %q is not a unit name", c.unit)
		}
	case KindHTTP:
		u, err := url.Parse(c.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Sprintf("http %q is not an http:// or https:// URL", c.url)
		}
		if u.User != nil {
			// Never echo credentials into reports and logs.
			c.Target = u.Redacted()
		}
	case KindTCP:
		host, port, err := net.SplitHostPort(c.addr)
		if err != nil || host == "" {
			return fmt.Sprintf("tcp %q is not a host:port address", c.addr)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return fmt.Sprintf("tcp %q has no valid port", c.addr)
		}
	case KindCommand:
		if c.argv[0] == "" {
			return "command has an empty program name"
		}
	}
	return ""
}

// FromSpecs converts every check of a HostSpec, reporting all invalid ones.
func FromSpecs(hcs []hostspec.HealthCheck) ([]Check, error) {
	out := make([]Check, 0, len(hcs))
	var errs []error
	for _, hc := range hcs {
		c, err := FromSpec(hc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// validateRunnable rejects checks that were not built by this package.
func (c Check) validateRunnable() error {
	ok := false
	switch c.Kind {
	case KindSystemd:
		ok = c.unit != ""
	case KindHTTP:
		ok = c.url != ""
	case KindTCP:
		ok = c.addr != ""
	case KindCommand:
		ok = len(c.argv) > 0
	case KindProbe:
		ok = c.probe != nil
	}
	switch {
	case !ok:
		return fmt.Errorf("%s check was not built with FromSpec or ProbeCheck", c.Kind)
	case c.Timeout <= 0 || c.Interval <= 0:
		return fmt.Errorf("timeout %s and interval %s must be positive", c.Timeout, c.Interval)
	case c.Retries < 0:
		return fmt.Errorf("retries %d must not be negative", c.Retries)
	}
	return nil
}

func (r *Runner) checkSystemd(ctx context.Context, c Check) (string, error) {
	// Without --quiet, is-active prints the state ("inactive", "failed",
	// "activating"), which is what a report should show. Exit 0 = active.
	out, err := r.runCommand(ctx, []string{r.opts.systemctl, "is-active", "--", c.unit})
	if err != nil {
		state := strings.TrimSpace(out)
		if i := strings.IndexByte(state, '\n'); i >= 0 {
			state = state[:i]
		}
		if state == "" {
			return out, fmt.Errorf("systemctl is-active %s: %w", c.unit, err)
		}
		return out, fmt.Errorf("unit %s is %s (systemctl is-active: %w)", c.unit, state, err)
	}
	return out, nil
}

func (r *Runner) checkHTTP(ctx context.Context, c Check) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", c.Target, err)
	}
	req.Header.Set("User-Agent", "bootsync-health")
	resp, err := r.opts.httpClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the message already
		}
		return "", fmt.Errorf("GET %s: %w", c.Target, err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok && c.expect == "" {
		// Healthy by status alone; a body that streams forever must not
		// turn that into a timeout.
		return "", nil
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPBody))
	output := truncateHead(body, r.opts.outputLimit)
	switch {
	case !ok:
		return output, fmt.Errorf("GET %s: status %s", c.Target, resp.Status)
	case bytes.Contains(body, []byte(c.expect)):
		return output, nil
	case readErr != nil:
		return output, fmt.Errorf("GET %s: read body: %w", c.Target, readErr)
	default:
		return output, fmt.Errorf("GET %s: status %s but the first %d bytes of the body do not contain %q", c.Target, resp.Status, len(body), c.expect)
	}
}

func checkTCP(ctx context.Context, c Check) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.addr, err)
	}
	return conn.Close()
}

// runCommand runs argv (no shell) in its own process group, so that on
// timeout the command and everything it started is killed, and returns the
// end of its combined output.
func (r *Runner) runCommand(ctx context.Context, argv []string) (string, error) {
	out := &tailBuffer{limit: r.opts.outputLimit}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid addresses the whole process group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = r.opts.killDelay
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command succeeded but left processes holding its output
		// open; they would outlive the check, so end them.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = nil
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", commandLine(argv), err)
	}
	return out.String(), nil
}

// tailBuffer keeps the last limit bytes written to it and counts the rest.
type tailBuffer struct {
	limit   int
	buf     []byte
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return n, nil
}

func (b *tailBuffer) String() string {
	if b.dropped == 0 {
		return string(b.buf)
	}
	return fmt.Sprintf("[%d bytes truncated]\n%s", b.dropped, b.buf)
}

func truncateHead(b []byte, limit int) string {
	if len(b) <= limit {
		return string(b)
	}
	return fmt.Sprintf("%s\n[%d more bytes truncated]", b[:limit], len(b)-limit)
}

func commandLine(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$") {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}
