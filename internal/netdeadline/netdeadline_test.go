package netdeadline

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// silent accepts connections and answers greeting (maybe nothing), then
// nothing more, until the test ends.
func silent(t *testing.T, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			if greeting != "" {
				go func() {
					// Answer only once the request is in, as a server would.
					r := bufio.NewReader(c)
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					_, _ = io.WriteString(c, greeting)
				}()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSilentServerTimesOutInEachPhase(t *testing.T) {
	const timeout = 300 * time.Millisecond
	client := &http.Client{Transport: Transport(timeout)}
	for name, greeting := range map[string]string{
		"no response headers": "",
		"a body that stops":   "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial",
	} {
		t.Run(name, func(t *testing.T) {
			addr := silent(t, greeting)
			start := time.Now()
			resp, err := client.Get("http://" + addr + "/")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if d := time.Since(start); d > 30*timeout+5*time.Second {
				t.Errorf("took %s with a timeout of %s", d, timeout)
			}
			if !IsTimeout(err) {
				t.Fatalf("error %v is not a timeout", err)
			}
		})
	}
}

func TestProgressIsNotCutOff(t *testing.T) {
	// Eight pauses of a quarter of the timeout: twice the timeout in all,
	// and each pause far enough under it that a loaded machine's late
	// wake-ups do not make it one.
	const timeout = time.Second
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 8 {
			_, _ = io.WriteString(w, strings.Repeat("x", 5))
			w.(http.Flusher).Flush()
			time.Sleep(timeout / 4)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	client := &http.Client{Transport: Transport(timeout)}
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || len(b) != 40 {
		t.Fatalf("a slow but steady body was cut off: %d bytes, %v", len(b), err)
	}
}
