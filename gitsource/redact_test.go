package gitsource_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootsync/bootsync/gitsource"
)

// Every URL form and every echo of an Authorization header is redacted,
// including URLs that do not parse.
func TestRedactEveryForm(t *testing.T) {
	for in, want := range map[string]string{
		`parse "https://user:secret@[::1": missing ']' in host`: `parse "https://***@[::1": missing ']' in host`,
		"https://user:p@ss@git.example.com/fleet.git":           "https://***@git.example.com/fleet.git",
		`{"Authorization":["Basic dXNlcjpzZWNyZXQ="]}`:          `{"Authorization":["Basic ***"]}`,
		"authorization=token abc123 trailing":                   "authorization=token ***",
		"Authorization: dXNlcjpzZWNyZXQ=\nnext":                 "Authorization: ***\nnext",
		"Proxy-Authorization: Basic Zm9vOmJhcg==":               "Proxy-Authorization: Basic ***",
		`Authorization: Digest username="u", response="abc"`:    "Authorization: Digest ***",
		"the Authorization header is missing":                   "the Authorization header is missing",
	} {
		if got := gitsource.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A URL that does not parse is still redacted in the error that says so;
// before, `validate --repo 'https://user:secret@[::1'` printed the password.
func TestMalformedURLIsRedacted(t *testing.T) {
	_, err := gitsource.New("https://user:secret@[::1", gitsource.WithCacheDir(t.TempDir()))
	if err == nil {
		t.Fatal("a malformed URL was accepted")
	}
	assertErrorChainHasNoSecret(t, err, "secret")
	if !strings.Contains(err.Error(), "https://***@[::1") {
		t.Fatalf("error %q does not show the URL redacted", err)
	}
}

// A #fragment is never sent (go-git would put it in the request path) and
// never shown: the URL is refused when it is configured.
func TestURLFragmentIsRefused(t *testing.T) {
	for _, url := range []string{"https://git.example.com/fleet.git#tok3n", "https://git.example.com/fleet.git#", "file:///srv/fleet.git#tok3n"} {
		_, err := gitsource.New(url, gitsource.WithCacheDir(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), "#fragment") {
			t.Fatalf("New(%q) = %v, want a fragment error", url, err)
		}
		assertErrorChainHasNoSecret(t, err, "tok3n")
	}
}

// A server that echoes the request's Authorization header in its error
// body (as JSON and as a header line) gets neither the password nor its
// base64 form into the error; before, only the raw password was redacted.
func TestEchoedAuthorizationIsRedacted(t *testing.T) {
	const user, password, token = "deploy", "hunter2-very-secret", "plain-token-value-1234"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]any{"message": "denied", "headers": r.Header})
		status := http.StatusForbidden
		if r.Header.Get("Authorization") == "" {
			status = http.StatusUnauthorized
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s\nyou sent Authorization %s\n%s\n", body, r.Header.Get("Authorization"), r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	passFile, tokenFile := filepath.Join(dir, "pass"), filepath.Join(dir, "token")
	writeFile(t, passFile, password+"\n")
	writeFile(t, tokenFile, token+"\n")
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	userFile := filepath.Join(dir, "user")
	writeFile(t, userFile, user+"\n")
	for _, opt := range []gitsource.Option{gitsource.WithBasicAuthFiles(userFile, passFile), gitsource.WithBearerTokenFile(tokenFile)} {
		r := newRemote(t, srv.URL+"/fleet.git", gitsource.WithCacheDir(t.TempDir()), gitsource.WithAllowHTTP(), opt, fast())
		_, err := r.Poll(context.Background(), "")
		if err == nil || !strings.Contains(err.Error(), "denied") {
			t.Fatalf("Poll = %v, want the server's refusal", err)
		}
		assertErrorChainHasNoSecret(t, err, password, basic, token)
	}
}
