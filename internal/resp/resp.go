// Package resp is a minimal RESP2 (Redis serialization protocol) client,
// standard library only. It exists for the Redis side of `rewardpool bench`:
// it sends commands as arrays of bulk strings, supports pipelining (Send any
// number of commands, Flush, then Receive the same number of replies) and
// parses every RESP2 reply type: simple strings, errors, integers, bulk
// strings, arrays (nested) and the two nil forms ($-1 and *-1).
//
// A Conn is not safe for concurrent use; use one per goroutine.
package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Kind is the RESP2 type of a reply, named by its leading byte.
type Kind byte

// The RESP2 reply kinds.
const (
	SimpleString Kind = '+'
	ErrorReply   Kind = '-'
	Integer      Kind = ':'
	BulkString   Kind = '$'
	Array        Kind = '*'
)

func (k Kind) String() string {
	switch k {
	case SimpleString:
		return "simple string"
	case ErrorReply:
		return "error"
	case Integer:
		return "integer"
	case BulkString:
		return "bulk string"
	case Array:
		return "array"
	}
	return fmt.Sprintf("kind(%q)", byte(k))
}

// Value is one parsed reply.
type Value struct {
	Kind  Kind
	Str   string  // SimpleString, ErrorReply, BulkString
	Int   int64   // Integer
	Array []Value // Array
	Null  bool    // nil bulk string ($-1) or nil array (*-1)
}

// String renders v for messages and tests.
func (v Value) String() string {
	switch {
	case v.Null:
		return "(nil)"
	case v.Kind == Integer:
		return strconv.FormatInt(v.Int, 10)
	case v.Kind == Array:
		parts := make([]string, len(v.Array))
		for i, e := range v.Array {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, " ") + "]"
	case v.Kind == ErrorReply:
		return "(error) " + v.Str
	}
	return strconv.Quote(v.Str)
}

// Error is an error reply from the server ("-ERR ...", "-NOSCRIPT ...").
// The connection stays usable after one.
type Error string

func (e Error) Error() string { return "redis: " + string(e) }

// Prefix is the error's first word, the error class by Redis convention
// ("ERR", "NOSCRIPT", "WRONGTYPE", ...).
func (e Error) Prefix() string {
	s := string(e)
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// ProtocolError reports a malformed reply; the connection is not usable
// after one.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "resp: protocol error: " + e.Msg }

// Limits applied while parsing, so that a broken peer cannot make the
// client allocate without bound.
const (
	MaxBulkLen  = 512 << 20
	MaxArrayLen = 1 << 24
	MaxDepth    = 32
)

// Conn is one connection to a RESP2 server.
type Conn struct {
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	scratch []byte
}

// Dial connects to addr over TCP, or TLS when tlsConfig is not nil.
func Dial(ctx context.Context, addr string, tlsConfig *tls.Config) (*Conn, error) {
	var d net.Dialer
	var c net.Conn
	var err error
	if tlsConfig != nil {
		td := tls.Dialer{NetDialer: &d, Config: tlsConfig}
		c, err = td.DialContext(ctx, "tcp", addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return NewConn(c), nil
}

// NewConn wraps an established connection.
func NewConn(c net.Conn) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 16<<10), w: bufio.NewWriterSize(c, 16<<10)}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// SetDeadline sets the read and write deadline of the connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// Send buffers one command; nothing is written until Flush (or until the
// buffer fills).
func (c *Conn) Send(args ...string) error {
	b := c.scratch[:0]
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	c.scratch = b
	_, err := c.w.Write(b)
	return err
}

// Flush writes every buffered command.
func (c *Conn) Flush() error { return c.w.Flush() }

// Receive reads the next reply. An error reply is returned both as the
// Value (Kind ErrorReply) and as an Error; any other error means the
// connection is broken.
func (c *Conn) Receive() (Value, error) {
	v, err := ReadValue(c.r)
	if err != nil {
		return v, err
	}
	if v.Kind == ErrorReply {
		return v, Error(v.Str)
	}
	return v, nil
}

// Do sends one command and reads its reply.
func (c *Conn) Do(args ...string) (Value, error) {
	if err := c.Send(args...); err != nil {
		return Value{}, err
	}
	if err := c.Flush(); err != nil {
		return Value{}, err
	}
	return c.Receive()
}

// ReadValue parses one RESP2 value from r.
func ReadValue(r *bufio.Reader) (Value, error) { return readValue(r, 0) }

func readValue(r *bufio.Reader, depth int) (Value, error) {
	line, err := readLine(r)
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, &ProtocolError{"empty line"}
	}
	k := Kind(line[0])
	rest := line[1:]
	switch k {
	case SimpleString, ErrorReply:
		return Value{Kind: k, Str: string(rest)}, nil
	case Integer:
		n, err := parseInt(rest)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: k, Int: n}, nil
	case BulkString:
		n, err := parseInt(rest)
		if err != nil {
			return Value{}, err
		}
		if n == -1 {
			return Value{Kind: k, Null: true}, nil
		}
		if n < 0 || n > MaxBulkLen {
			return Value{}, &ProtocolError{fmt.Sprintf("bad bulk length %d", n)}
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return Value{}, unexpected(err)
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Value{}, &ProtocolError{"bulk string not terminated by CRLF"}
		}
		return Value{Kind: k, Str: string(buf[:n])}, nil
	case Array:
		n, err := parseInt(rest)
		if err != nil {
			return Value{}, err
		}
		if n == -1 {
			return Value{Kind: k, Null: true}, nil
		}
		if n < 0 || n > MaxArrayLen {
			return Value{}, &ProtocolError{fmt.Sprintf("bad array length %d", n)}
		}
		if depth >= MaxDepth {
			return Value{}, &ProtocolError{"arrays nested too deeply"}
		}
		arr := make([]Value, n)
		for i := range arr {
			if arr[i], err = readValue(r, depth+1); err != nil {
				return Value{}, unexpected(err)
			}
		}
		return Value{Kind: k, Array: arr}, nil
	}
	return Value{}, &ProtocolError{fmt.Sprintf("unknown reply type %q", line[0])}
}

// unexpected turns a clean EOF inside a value into ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine returns the next CRLF-terminated line without the CRLF. The
// slice is only valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &ProtocolError{"line too long"}
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, &ProtocolError{"line not terminated by CRLF"}
	}
	return line[:len(line)-2], nil
}

func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, &ProtocolError{fmt.Sprintf("bad integer %q", b)}
	}
	neg := false
	if b[0] == '-' {
		neg, b = true, b[1:]
		if len(b) == 0 {
			return 0, &ProtocolError{"bad integer \"-\""}
		}
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, &ProtocolError{fmt.Sprintf("bad integer %q", b)}
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, &ProtocolError{"integer overflows int64"}
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, nil
}

// AppendValue appends the RESP2 encoding of v to b. Tests use it to play
// a server.
func AppendValue(b []byte, v Value) []byte {
	b = append(b, byte(v.Kind))
	switch {
	case v.Null:
		b = append(b, "-1\r\n"...)
	case v.Kind == Integer:
		b = strconv.AppendInt(b, v.Int, 10)
		b = append(b, '\r', '\n')
	case v.Kind == BulkString:
		b = strconv.AppendInt(b, int64(len(v.Str)), 10)
		b = append(b, '\r', '\n')
		b = append(b, v.Str...)
		b = append(b, '\r', '\n')
	case v.Kind == Array:
		b = strconv.AppendInt(b, int64(len(v.Array)), 10)
		b = append(b, '\r', '\n')
		for _, e := range v.Array {
			b = AppendValue(b, e)
		}
	default:
		b = append(b, v.Str...)
		b = append(b, '\r', '\n')
	}
	return b
}
