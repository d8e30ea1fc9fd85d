package fleetlockserver

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type answer struct {
	Status      int
	ContentType string
	Kind, Value string
}

// post sends a raw request, as any FleetLock client (Zincati, curl) would.
func post(t *testing.T, s *Server, method, path, header, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set("fleet-lock-protocol", header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Kind, Value string }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("error body %q is not JSON: %v", raw, err)
		}
		a.Kind, a.Value = e.Kind, e.Value
	}
	return a
}

func body(id, group string) string {
	return `{"client_params":{"id":"` + id + `","group":"` + group + `"}}`
}

func TestProtocolValidation(t *testing.T) {
	s := Start(t, map[string]int{"default": 1})
	cases := []struct {
		name, method, path, header, body string
		status                           int
		kind, valueHas                   string
	}{
		{"missing header", "POST", PreRebootPath, "", body("a", "default"), 400, KindInvalidClientIdentity, "fleet-lock-protocol"},
		{"header not true", "POST", SteadyStatePath, "yes", body("a", "default"), 400, KindInvalidClientIdentity, "fleet-lock-protocol"},
		{"GET", "GET", PreRebootPath, "true", "", 405, KindMethodNotAllowed, "use POST"},
		{"not JSON", "POST", PreRebootPath, "true", "id=a", 400, KindInvalidClientIdentity, "invalid character"},
		{"empty id", "POST", PreRebootPath, "true", body("", "default"), 400, KindInvalidClientIdentity, "empty node ID"},
		{"empty group", "POST", PreRebootPath, "true", body("a", ""), 400, KindInvalidClientIdentity, "empty group"},
		{"bad group", "POST", PreRebootPath, "true", body("a", "x y"), 400, KindInvalidClientIdentity, "does not match"},
		{"unknown group", "POST", PreRebootPath, "true", body("a", "workers"), 400, KindUnknownGroup, `"workers"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, s, tc.method, tc.path, tc.header, tc.body)
			if a.Status != tc.status || a.Kind != tc.kind || !strings.Contains(a.Value, tc.valueHas) || a.ContentType != "application/json" {
				t.Fatalf("got %+v, want %d %s with a value containing %q", a, tc.status, tc.kind, tc.valueHas)
			}
		})
	}
	if h := s.Holders("default"); len(h) != 0 {
		t.Fatalf("rejected requests took slots: %v", h)
	}
	if n := len(s.History()); n != len(cases) {
		t.Fatalf("history has %d events, want one per request (%d)", n, len(cases))
	}
}

func TestSemaphoreIsRecursiveOwnedAndCounted(t *testing.T) {
	s := Start(t, map[string]int{"default": 2, "canary": 1})
	lock := func(id, group string) answer { return post(t, s, "POST", PreRebootPath, "true", body(id, group)) }
	unlock := func(id, group string) answer { return post(t, s, "POST", SteadyStatePath, "true", body(id, group)) }

	for _, id := range []string{"b", "a", "a"} { // "a" twice: recursive
		if a := lock(id, "default"); a.Status != 200 {
			t.Fatalf("lock %s: %+v", id, a)
		}
	}
	if h := s.Holders("default"); !slices.Equal(h, []string{"a", "b"}) {
		t.Fatalf("holders = %v, want [a b]", h)
	}
	a := lock("c", "default")
	if a.Status != 500 || a.Kind != KindFailedLock || a.Value != "all 2 semaphore slots currently locked" {
		t.Fatalf("third host: %+v, want airlock's failed_lock", a)
	}
	// Groups are separate semaphores.
	if a := lock("c", "canary"); a.Status != 200 {
		t.Fatalf("canary: %+v", a)
	}
	// Releasing a slot one does not hold is fine and changes nothing.
	if a := unlock("c", "default"); a.Status != 200 || len(s.Holders("default")) != 2 {
		t.Fatalf("unlock not held: %+v, holders %v", a, s.Holders("default"))
	}
	if a := unlock("a", "default"); a.Status != 200 || !slices.Equal(s.Holders("default"), []string{"b"}) {
		t.Fatalf("unlock a: %+v, holders %v", a, s.Holders("default"))
	}
	if a := unlock("a", "default"); a.Status != 200 {
		t.Fatalf("second unlock: %+v", a)
	}
	if a := lock("c", "default"); a.Status != 200 {
		t.Fatalf("c after a released: %+v", a)
	}
	if s.MaxHolders("default") != 2 || s.MaxHolders("canary") != 1 {
		t.Fatalf("max holders default=%d canary=%d, want 2 and 1", s.MaxHolders("default"), s.MaxHolders("canary"))
	}

	h := s.History()
	last := h[len(h)-1]
	if last.Op != "pre-reboot" || last.ID != "c" || last.Group != "default" || last.Status != 200 || !slices.Equal(last.Holders, []string{"b", "c"}) {
		t.Fatalf("last event %+v", last)
	}
	if s.String() != "fleetlock server "+s.URL()+": canary=[c]/1 (max 1) default=[b c]/2 (max 2)" {
		t.Fatalf("String() = %q", s.String())
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	for _, slots := range []map[string]int{nil, {"default": 0}, {"a b": 1}} {
		if s, err := New(slots); err == nil {
			s.Close()
			t.Fatalf("New(%v) accepted", slots)
		}
	}
}

func TestCloseStopsServing(t *testing.T) {
	s, err := New(map[string]int{"default": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Post(s.URL()+PreRebootPath, "application/json", strings.NewReader(body("a", "default"))); err == nil {
		t.Fatal("server still answers after Close")
	}
}
