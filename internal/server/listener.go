package server

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// connMux splits one plaintext listener between the gRPC server and the
// HTTP server by the first bytes of each connection: gRPC clients open with
// the HTTP/2 preface "PRI * HTTP/2.0", HTTP/1.x clients with a method name.
// gRPC then runs on its native transport rather than through net/http.
type connMux struct {
	root        net.Listener
	grpc, http1 *chanListener
}

// http2Preface is how every prior-knowledge HTTP/2 (h2c) connection starts.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func newConnMux(root net.Listener) *connMux {
	return &connMux{root: root, grpc: newChanListener(root.Addr()), http1: newChanListener(root.Addr())}
}

func (m *connMux) serve() {
	defer m.grpc.Close()
	defer m.http1.Close()
	backoff := 5 * time.Millisecond
	for {
		c, err := m.root.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry, as
			// net/http does, instead of spinning or giving up.
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		go m.route(c)
	}
}

func (m *connMux) route(c net.Conn) {
	// Three bytes tell "PRI" from any HTTP/1 method; a client that sends
	// nothing within the deadline is dropped.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 3)
	if _, err := io.ReadFull(c, head); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, head: head}
	target := m.http1
	if string(head) == http2Preface[:3] {
		target = m.grpc
	}
	if !target.push(pc) {
		c.Close()
	}
}

func (m *connMux) Close() error { return m.root.Close() }

// peekedConn replays the bytes read to route the connection.
type peekedConn struct {
	net.Conn
	head []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// chanListener is a net.Listener fed by connMux.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
