// Package silent is the server a flaky network produces: a TCP listener on
// 127.0.0.1 that accepts connections and never answers (or answers a
// greeting, such as HTTP headers, and then stalls), for tests that show
// every network call of bootsync has a deadline.
package silent

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a TCP server on 127.0.0.1 that accepts connections and then
// never answers (or, with StallAfter, answers some bytes and stalls). It
// keeps every connection open until the test ends, when it releases them.
type Server struct {
	ln       net.Listener
	greeting []byte
	accepted atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

// New starts a server that accepts and never sends a byte.
func New(t testing.TB) *Server { return newSilent(t, nil) }

// NewStallAfter starts a server that reads a request up to its first blank
// line, writes greeting and then stalls: e.g. HTTP response headers
// announcing a body that never comes.
func NewStallAfter(t testing.TB, greeting string) *Server { return newSilent(t, []byte(greeting)) }

func newSilent(t testing.TB, greeting []byte) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln, greeting: greeting, done: make(chan struct{})}
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		if len(s.greeting) > 0 {
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" || line == "\n" {
						break
					}
				}
				_, _ = c.Write(s.greeting)
			}()
		}
		// Never read or write anything else: the client's request sits in
		// the socket buffer, as with a server that hung.
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepted is how many connections the server accepted.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

// Close stops listening and closes every connection (also done at the end of
// the test).
func (s *Server) Close() {
	_ = s.ln.Close()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}
