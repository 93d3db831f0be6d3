// Package tarpit starts hostile listeners for tests of connect timeouts:
// servers on loopback that take a client's connection some way and then
// never answer, each stalling a different step of connecting. A tarpit
// is closed by t.Cleanup, which waits for all of its goroutines.
package tarpit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Kind is the step of connecting a tarpit stalls.
type Kind int

const (
	// SYN never completes the TCP handshake: the listener's accept queue
	// is full, so the kernel drops the client's SYN (Linux only; New
	// skips the test elsewhere).
	SYN Kind = iota
	// Accept completes the TCP handshake and then neither reads nor
	// writes: the upgrade request sits in the socket buffers.
	Accept
	// Silent reads the HTTP upgrade request and never replies.
	Silent
	// TLS reads the client's TLS ClientHello and never answers it: the
	// TLS handshake never completes. Connect to it with https or wss.
	TLS
)

// Kinds are all the kinds, for table tests.
var Kinds = []Kind{SYN, Accept, Silent, TLS}

func (k Kind) String() string {
	switch k {
	case SYN:
		return "syn"
	case Accept:
		return "accept"
	case Silent:
		return "silent"
	case TLS:
		return "tls"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Stage is what the client is stuck in against this kind of tarpit, as
// a connect error names it.
func (k Kind) Stage() string {
	switch k {
	case SYN:
		return "while connecting (DNS, TCP)"
	case TLS:
		return "during the TLS handshake"
	}
	return "awaiting the WebSocket upgrade response"
}

// Tarpit is a started tarpit.
type Tarpit struct {
	// Kind is what it stalls.
	Kind Kind
	// Addr is its host:port on 127.0.0.1.
	Addr string
	// URL is the project URL to connect to: http://Addr, or https://Addr
	// for TLS.
	URL string

	reached atomic.Int32 // clients that got to the stalled step
	ln      net.Listener
	closeFn func()
	mu      sync.Mutex
	conns   []net.Conn
	closed  bool
	wg      sync.WaitGroup
}

// New starts a tarpit of kind k on 127.0.0.1; t.Cleanup closes it.
func New(t testing.TB, k Kind) *Tarpit {
	t.Helper()
	p := &Tarpit{Kind: k}
	if k == SYN {
		addr, closeFn, err := synListener()
		if err != nil {
			if os.Getenv("CI") != "" { // a skip must not hide a missing piece in CI
				t.Fatalf("tarpit %s: %v", k, err)
			}
			t.Skipf("tarpit %s: %v", k, err)
		}
		p.Addr, p.closeFn = addr, closeFn
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("tarpit %s: %v", k, err)
		}
		p.ln, p.Addr = ln, ln.Addr().String()
		p.wg.Add(1)
		go p.accept()
	}
	p.URL = "http://" + p.Addr
	if k == TLS {
		p.URL = "https://" + p.Addr
	}
	t.Cleanup(p.Close)
	return p
}

// Reached returns the number of connections that got to the step the
// tarpit stalls: for Silent a whole HTTP request was read, for TLS a TLS
// handshake record, for Accept a TCP connection was accepted (SYN: 0,
// nothing gets that far).
func (p *Tarpit) Reached() int { return int(p.reached.Load()) }

func (p *Tarpit) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		if p.Kind == Accept {
			p.reached.Add(1)
			continue
		}
		p.wg.Add(1)
		go p.read(c)
	}
}

// read reads what the client sends and never answers.
func (p *Tarpit) read(c net.Conn) {
	defer p.wg.Done()
	var seen []byte
	buf := make([]byte, 4096)
	done := false
	for {
		n, err := c.Read(buf)
		if !done && n > 0 {
			seen = append(seen, buf[:n]...)
			switch {
			case p.Kind == TLS && seen[0] == 0x16: // a handshake record
				done = true
			case p.Kind == Silent && bytes.Contains(seen, []byte("\r\n\r\n")):
				done = true
			}
			if done {
				p.reached.Add(1)
				seen = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// Close closes the listener and every connection it holds, and waits
// for its goroutines.
func (p *Tarpit) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
	}
	if p.closeFn != nil {
		p.closeFn()
	}
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
