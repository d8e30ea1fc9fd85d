// Package headless opens pages in Debian's headless Chromium for tests:
// the DOM after the page loaded, and a screenshot.
package headless

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binaries that provide headless Chromium, in order of preference.
var Binaries = []string{"/usr/bin/chromium", "/usr/bin/chromium-headless-shell"}

// Require returns the Chromium binary; it skips the test when there is
// none, and fails it under CI=true (where .ci/run installs it).
func Require(t testing.TB) string {
	t.Helper()
	for _, b := range Binaries {
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("headless Chromium is required under CI (Debian package chromium)")
	}
	t.Skip("headless Chromium is not installed (apt-get install chromium)")
	return ""
}

// run runs Chromium headless on the local file page with extra arguments,
// offline and with a fresh profile.
func run(t testing.TB, bin, page string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, extra...)
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+abs)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
	}
	return out
}

// DumpDOM is the serialized DOM of the page once loaded.
func DumpDOM(t testing.TB, bin, page string) string {
	t.Helper()
	return string(run(t, bin, page, "--dump-dom"))
}

// Screenshot saves a PNG of the page at width x height into png.
func Screenshot(t testing.TB, bin, page, png string, width, height int) {
	t.Helper()
	run(t, bin, page, "--screenshot="+png, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "--hide-scrollbars")
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Fatalf("chromium wrote no screenshot at %s: %v", png, err)
	}
}
