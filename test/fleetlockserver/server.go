// Package fleetlockserver is a FleetLock server for tests: the protocol
// Zincati speaks, implemented the way coreos/airlock does it (a counting
// semaphore per group with recursive, owned locks), held in memory and
// served over HTTP on 127.0.0.1. It records what tests need to assert at the
// server: the holders of each group, the highest number of concurrent
// holders ever seen, and the history of requests.
//
// Protocol (coreos/zincati docs/development/fleetlock/protocol.md):
//   - POST {base}/v1/pre-reboot takes a slot for the client id in its
//     group; taking it again while holding it succeeds (recursive lock).
//   - POST {base}/v1/steady-state releases the id's slot if it holds one;
//     releasing a slot it does not hold succeeds too.
//   - Both require the header "fleet-lock-protocol: true" and the body
//     {"client_params":{"id":"…","group":"…"}} with non-empty values.
//   - 200 means granted; any other status is a refusal with a JSON body
//     {"kind":"…","value":"…"}. The kinds are airlock's:
//     invalid_client_identity (400), unknown_group (400), failed_lock (500,
//     also for a full semaphore), plus method_not_allowed (405) for non-POST
//     requests, as poseidon/fleetlock answers.
package fleetlockserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Endpoints relative to the server's base URL.
const (
	PreRebootPath   = "/v1/pre-reboot"
	SteadyStatePath = "/v1/steady-state"
)

// Error kinds answered by the server.
const (
	KindInvalidClientIdentity = "invalid_client_identity"
	KindUnknownGroup          = "unknown_group"
	KindFailedLock            = "failed_lock"
	KindMethodNotAllowed      = "method_not_allowed"
)

// groupPattern is the group syntax the protocol specifies.
var groupPattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// Event is one request the server answered.
type Event struct {
	Time    time.Time
	Op      string // "pre-reboot" or "steady-state"
	Group   string
	ID      string
	Status  int
	Kind    string   // error kind; empty when granted
	Holders []string // the group's holders after the request
}

// Server is a running FleetLock server.
type Server struct {
	url      string
	listener net.Listener
	http     *http.Server
	served   chan struct{}

	mu         sync.Mutex
	slots      map[string]int
	holders    map[string][]string // sorted, as airlock keeps them
	maxHolders map[string]int
	history    []Event
}

// New starts a server on 127.0.0.1 with the given number of slots per
// group. Requests for other groups are refused with unknown_group.
func New(slots map[string]int) (*Server, error) {
	if len(slots) == 0 {
		return nil, errors.New("fleetlock server: no groups configured")
	}
	for g, n := range slots {
		if !groupPattern.MatchString(g) || n < 1 {
			return nil, fmt.Errorf("fleetlock server: group %q with %d slots: want a name matching %s and at least one slot", g, n, groupPattern)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fleetlock server: listen: %w", err)
	}
	s := &Server{
		url:        "http://" + ln.Addr().String(),
		listener:   ln,
		served:     make(chan struct{}),
		slots:      map[string]int{},
		holders:    map[string][]string{},
		maxHolders: map[string]int{},
	}
	for g, n := range slots {
		s.slots[g] = n
	}
	mux := http.NewServeMux()
	mux.HandleFunc(PreRebootPath, func(w http.ResponseWriter, r *http.Request) { s.handle(w, r, "pre-reboot") })
	mux.HandleFunc(SteadyStatePath, func(w http.ResponseWriter, r *http.Request) { s.handle(w, r, "steady-state") })
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.served)
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

// Start is New for tests: it fails the test on error and stops the server
// when the test ends.
func Start(tb testing.TB, slots map[string]int) *Server {
	tb.Helper()
	s, err := New(slots)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// URL is the base URL clients are configured with.
func (s *Server) URL() string { return s.url }

// Close stops the server and waits for it to finish.
func (s *Server) Close() error {
	err := s.http.Close()
	<-s.served
	return err
}

// Holders returns the ids holding a slot of group, sorted.
func (s *Server) Holders(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.holders[group])
}

// MaxHolders returns the highest number of ids that held a slot of group at
// the same time since the server started.
func (s *Server) MaxHolders(group string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxHolders[group]
}

// History returns every answered request in order.
func (s *Server) History() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.history))
	for i, e := range s.history {
		e.Holders = slices.Clone(e.Holders)
		out[i] = e
	}
	return out
}

type request struct {
	ClientParams struct {
		ID    string `json:"id"`
		Group string `json:"group"`
	} `json:"client_params"`
}

type errorBody struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, op string) {
	status, kind, value := s.serve(r, op)
	if status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(errorBody{Kind: kind, Value: value})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// serve validates one request, applies it to its group's semaphore and
// records it in the history.
func (s *Server) serve(r *http.Request, op string) (status int, kind, value string) {
	status, kind, value, id, group := validate(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Recorded under the same lock as the change, so the history is in
	// the order the semaphore changed.
	defer func() {
		s.history = append(s.history, Event{Time: time.Now(), Op: op, Group: group, ID: id, Status: status, Kind: kind,
			Holders: slices.Clone(s.holders[group])})
	}()
	if status != http.StatusOK {
		return status, kind, value
	}
	slots, ok := s.slots[group]
	if !ok {
		return http.StatusBadRequest, KindUnknownGroup, fmt.Sprintf("unknown group %q", group)
	}
	holders := s.holders[group]
	i, held := slices.BinarySearch(holders, id)
	switch op {
	case "pre-reboot":
		if held {
			return http.StatusOK, "", ""
		}
		if len(holders) >= slots {
			return http.StatusInternalServerError, KindFailedLock, fmt.Sprintf("all %d semaphore slots currently locked", slots)
		}
		s.holders[group] = slices.Insert(holders, i, id)
		s.maxHolders[group] = max(s.maxHolders[group], len(s.holders[group]))
	case "steady-state":
		if held {
			s.holders[group] = slices.Delete(holders, i, i+1)
		}
	}
	return http.StatusOK, "", ""
}

// validate checks the method, the protocol header and the client identity.
func validate(r *http.Request) (status int, kind, value, id, group string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, KindMethodNotAllowed, fmt.Sprintf("method %s not allowed, use POST", r.Method), "", ""
	}
	if r.Header.Get("fleet-lock-protocol") != "true" {
		return http.StatusBadRequest, KindInvalidClientIdentity, "failed to validate client identity: wrong 'fleet-lock-protocol' header", "", ""
	}
	var req request
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return http.StatusBadRequest, KindInvalidClientIdentity, "failed to validate client identity: " + err.Error(), "", ""
	}
	id, group = req.ClientParams.ID, req.ClientParams.Group
	switch {
	case group == "":
		return http.StatusBadRequest, KindInvalidClientIdentity, "failed to validate client identity: empty group", id, group
	case !groupPattern.MatchString(group):
		return http.StatusBadRequest, KindInvalidClientIdentity, fmt.Sprintf("failed to validate client identity: group %q does not match %s", group, groupPattern), id, group
	case id == "":
		return http.StatusBadRequest, KindInvalidClientIdentity, "failed to validate client identity: empty node ID", id, group
	}
	return http.StatusOK, "", "", id, group
}

// String summarises the server's state, for test failure messages.
func (s *Server) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "fleetlock server %s:", s.url)
	groups := make([]string, 0, len(s.slots))
	for g := range s.slots {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		fmt.Fprintf(&b, " %s=%v/%d (max %d)", g, s.holders[g], s.slots[g], s.maxHolders[g])
	}
	return b.String()
}
