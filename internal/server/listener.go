package server

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// connMux splits one plaintext listener between the gRPC server and the
// HTTP server. HTTP/1.x clients open with a method name and go to the HTTP
// server. Prior-knowledge HTTP/2 (h2c) clients open with the preface "PRI *
// HTTP/2.0" and may be gRPC or HTTP/JSON (curl --http2-prior-knowledge): the
// mux reads up to their first request's headers and routes by its content
// type, as the TLS port does per request, so gRPC runs on its native
// transport and JSON on net/http's.
type connMux struct {
	root        net.Listener
	grpc, http1 *chanListener
	// handshake bounds how long a new connection may take to show which
	// server it is for.
	handshake time.Duration
}

// http2Preface is how every prior-knowledge HTTP/2 (h2c) connection starts.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// maxSniff bounds what the mux buffers of an h2c connection before it
// knows where it goes: the client cannot send more than one initial flow
// control window (64KiB) of request body before the server answers.
const maxSniff = 256 << 10

func newConnMux(root net.Listener, handshake time.Duration) *connMux {
	return &connMux{root: root, grpc: newChanListener(root.Addr()), http1: newChanListener(root.Addr()), handshake: handshake}
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
	// Three bytes tell "PRI" from any HTTP/1 method; a client that does not
	// show what it is within the handshake timeout is dropped.
	c.SetReadDeadline(time.Now().Add(m.handshake))
	head := make([]byte, 3)
	if _, err := io.ReadFull(c, head); err != nil {
		c.Close()
		return
	}
	target := m.http1
	if string(head) == http2Preface[:3] {
		var grpc bool
		var err error
		if head, grpc, err = sniffH2C(c, head); err != nil {
			c.Close()
			return
		}
		if grpc {
			target = m.grpc
		}
	}
	c.SetReadDeadline(time.Time{})
	if !target.push(&peekedConn{Conn: c, head: head}) {
		c.Close()
	}
}

// sniffH2C reads an h2c connection up to its first request's headers and
// reports whether it is gRPC (content-type application/grpc...). It returns
// the bytes to replay to the chosen server, which then sees the connection
// from its first byte.
//
// A gRPC client sends no request before it has the server's SETTINGS, so the
// mux sends an empty SETTINGS frame itself (all defaults; the real server's
// own SETTINGS follow and supersede them). The client's acknowledgement of
// it is dropped from the replay, since the real server never sent that
// frame; the mux waits for it, which a conforming client sends at once.
func sniffH2C(c io.ReadWriter, head []byte) (replay []byte, grpc bool, err error) {
	rest := make([]byte, len(http2Preface)-len(head))
	if _, err := io.ReadFull(c, rest); err != nil {
		return nil, false, err
	}
	if string(head)+string(rest) != http2Preface {
		return nil, false, errors.New("h2c: bad preface")
	}
	buf := append(head, rest...)
	rec := &recorder{buf: buf}
	fr := http2.NewFramer(c, io.TeeReader(c, rec))
	fr.SetMaxReadFrameSize(16 << 10) // the default we advertise
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 64 << 10
	if err := fr.WriteSettings(); err != nil {
		return nil, false, err
	}
	acked, found := false, false
	for !acked || !found {
		if len(rec.buf) > maxSniff {
			return nil, false, errors.New("h2c: too much data before the first request")
		}
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, false, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() && !acked {
				acked = true
				rec.buf = rec.buf[:len(rec.buf)-9] // an ACK is a bare frame header
			}
		case *http2.MetaHeadersFrame:
			if !found {
				found = true
				grpc = strings.HasPrefix(f.PseudoValue("method"), "POST") &&
					strings.HasPrefix(headerValue(f, "content-type"), "application/grpc")
			}
		}
	}
	return rec.buf, grpc, nil
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// recorder keeps every byte read through it.
type recorder struct{ buf []byte }

func (r *recorder) Write(p []byte) (int, error) {
	r.buf = append(r.buf, p...)
	return len(p), nil
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

// limitListener caps the connections open at once: Accept waits for a free
// slot before taking the next connection from the kernel, and a slot frees
// when its connection is closed. The timeouts of the servers behind it cut
// stalled connections, so a flood of slow clients holds slots only that
// long, and connections already open keep being served.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
	open  atomic.Int64
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &limitedConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn frees its slot once, on the first Close.
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.slots
	})
	return err
}
