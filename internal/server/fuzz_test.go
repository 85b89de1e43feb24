package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// FuzzParseDrawBody: parseDrawBody never panics; on success Count is what
// the body said (1 when absent), Compact is its boolean, and Key (User) is
// the body's idempotency_key (user_id), exactly: valid UTF-8, and never a
// U+FFFD the body did not spell (invalid
// bytes and lone surrogate escapes are refused, not replaced); an error is
// always an *Error with code INVALID_ARGUMENT. Seeds are below
// and in testdata/fuzz/FuzzParseDrawBody.
func FuzzParseDrawBody(f *testing.F) {
	for _, s := range []string{
		``,
		`   `,
		`{}`,
		`{"count": 3}`,
		`{"count": "3"}`,
		`{"count": 3, "idempotency_key": "abc"}`,
		`{"count": 3, "compact": true}`,
		`{"compact": false, "count": 9}`,
		`{"compact": 1}`,
		`{"compact": null}`,
		`{"idempotency_key": "k\u00e9\n"}`,
		`{"count": 0}`,
		`{"count": -1}`,
		`{"count": 1.5}`,
		`{"count": 1e3}`,
		`{"count": "x"}`,
		`{"count": true}`,
		`{"count": null}`,
		`{"count": "+7"}`,
		`{"count": 99999999999999999999}`,
		`{"idempotency_key": 5}`,
		`{"idempotency_key": null}`,
		`{"unknown": 1}`,
		`{"count": 1, "count": 2}`,
		`{"count": 1} {}`,
		`[1]`,
		`"count"`,
		`{"count":`,
		`{"count" 1}`,
		"{\"idempotency_key\": \"\xff\xfe\"}",
		"{\"idempotency_key\": \"a\xff\"}",
		"{\"idempotency_key\": \"a\xed\xa0\x80\"}",
		`{"idempotency_key": "a\ufffd"}`,
		`{"idempotency_key": "a\ud800"}`,
		`{"idempotency_key": "\udc00"}`,
		`{"idempotency_key": "\ud83d\ude00"}`,
		`{"idempotency_key": "\ud83d\\ude00"}`,
		`{"idempotency_key": "\\ud800"}`,
		`{"idempotency_key": "\ud83d\u0041"}`,
		`{"idempotency_key": "\uD83D\uDE00x"}`,
		`{"user_id": "alice"}`,
		`{"count": 2, "idempotency_key": "k", "user_id": "bob \u00e9"}`,
		`{"user_id": 7}`,
		"{\"user_id\": \"a\xff\"}",
		`{"user_id": "a\ud800"}`,
		` {"count":"007" ,"compact" : false,"idempotency_key":"é k"} `,
		`{"count":-0}`,
		`{"count":01}`,
		`{"count":"-"}`,
		`{"count":123456789012345678901}`,
		`{"count":9223372036854775807}`,
		"{\"idempotency_key\":\"a\tb\"}",
		`{"compact":truex}`,
		`{"count":1,}`,
		`{}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The allocation-free parser takes only bodies the general one
		// reads the same way; everything else goes to the general one.
		if fast, ok := fastDrawBody(b); ok {
			if slow, err := parseDrawBodyJSON(b); err != nil || slow != fast {
				t.Fatalf("fastDrawBody(%q) = %+v, the encoding/json path says %+v, %v", b, fast, slow, err)
			}
		}
		got, err := parseDrawBody(b)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || se.Code != codes.InvalidArgument {
				t.Fatalf("parseDrawBody(%q) error %#v: want an *Error with INVALID_ARGUMENT", b, err)
			}
			if se.Message == "" {
				t.Fatalf("parseDrawBody(%q): empty error message", b)
			}
			return
		}
		// Success: the body is empty or a JSON object with at most the
		// four known fields, each once.
		want := drawBody{Count: 1}
		if len(bytes.TrimSpace(b)) > 0 {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(b, &fields); err != nil {
				t.Fatalf("parseDrawBody(%q) accepted a body encoding/json rejects: %v", b, err)
			}
			for name, raw := range fields {
				switch name {
				case "count":
					want.Count = oracleCount(t, b, raw)
				case "idempotency_key":
					if err := json.Unmarshal(raw, &want.Key); err != nil {
						t.Fatalf("parseDrawBody(%q) accepted idempotency_key %s", b, raw)
					}
					checkKeyNotRewritten(t, b, raw, want.Key)
				case "user_id":
					if err := json.Unmarshal(raw, &want.User); err != nil {
						t.Fatalf("parseDrawBody(%q) accepted user_id %s", b, raw)
					}
					checkKeyNotRewritten(t, b, raw, want.User)
				case "compact":
					if err := json.Unmarshal(raw, &want.Compact); err != nil || (string(raw) != "true" && string(raw) != "false") {
						t.Fatalf("parseDrawBody(%q) accepted compact %s", b, raw)
					}
				default:
					t.Fatalf("parseDrawBody(%q) accepted unknown field %q", b, name)
				}
			}
		}
		if got != want {
			t.Fatalf("parseDrawBody(%q) = %+v, want %+v", b, got, want)
		}
	})
}

// checkKeyNotRewritten fails when an accepted key is not what the body
// spelled: invalid UTF-8 in the raw text, or a U+FFFD in the key that the
// raw text spells neither literally nor as an escape (encoding/json's
// replacement of a bad byte or a lone surrogate).
func checkKeyNotRewritten(t *testing.T, body []byte, raw json.RawMessage, key string) {
	if !utf8.Valid(raw) || !utf8.ValidString(key) {
		t.Fatalf("parseDrawBody(%q) accepted a key that is not valid UTF-8", body)
	}
	// Literal U+FFFD, plus escapes in any case (\uFFFD, \ufffd). An
	// escaped backslash followed by "ufffd" is over-counted, which only
	// makes the check a little more lenient.
	spelled := strings.Count(string(raw), "\uFFFD") + strings.Count(strings.ToLower(string(raw)), `\ufffd`)
	if got := strings.Count(key, "\uFFFD"); got > spelled {
		t.Fatalf("parseDrawBody(%q) accepted key %q with %d U+FFFD, the body spells %d: a rewritten key", body, key, got, spelled)
	}
}

// oracleCount reads count the way the API documents it: a JSON integer, or
// a string holding one.
func oracleCount(t *testing.T, body []byte, raw json.RawMessage) int64 {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			t.Fatalf("parseDrawBody(%q) accepted count %s", body, raw)
		}
		s = n.String()
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("parseDrawBody(%q) accepted count %s, which is not an int64", body, raw)
	}
	return n
}

// fakeH2CConn feeds a client's bytes to sniffH2C and swallows what the mux
// writes back (its SETTINGS frame).
type fakeH2CConn struct {
	r *bytes.Reader
}

func (c *fakeH2CConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fakeH2CConn) Write(p []byte) (int, error) { return len(p), nil }

// FuzzSniffH2C: the h2c router never panics on what a client sends after
// the preface, and when it routes a connection, the bytes it replays are
// exactly what it read minus one SETTINGS acknowledgement (9 bytes), so
// the chosen server sees the client's stream intact.
func FuzzSniffH2C(f *testing.F) {
	settings := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0}
	ack := []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}
	// HEADERS on stream 1, END_HEADERS, literal fields without indexing:
	// :method POST, content-type application/grpc.
	block := []byte{0x83, 0x0f, 0x10, 0x10}
	block = append(block, "application/grpc"...)
	headers := append([]byte{0, 0, byte(len(block)), 1, 4, 0, 0, 0, 1}, block...)
	for _, seed := range [][]byte{
		nil,
		settings,
		append(append(append([]byte{}, settings...), ack...), headers...),
		append(append(append([]byte{}, settings...), headers...), ack...),
		append(append([]byte{}, settings...), 0, 0, 5, 0, 1, 0, 0, 0, 1, 'h', 'e', 'l', 'l', 'o'),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(http2Preface[3:]), b...)
		r := bytes.NewReader(in)
		replay, _, err := sniffH2C(&fakeH2CConn{r: r}, []byte(http2Preface[:3]))
		if err != nil {
			return
		}
		consumed := 3 + len(in) - r.Len()
		if len(replay) != consumed-9 {
			t.Fatalf("replay is %d bytes of %d read; want all but one 9-byte SETTINGS ack", len(replay), consumed)
		}
		if !bytes.HasPrefix(replay, []byte(http2Preface)) {
			t.Fatalf("replay does not start with the preface: %q", replay[:min(len(replay), 24)])
		}
	})
}

// TestSniffH2CRoutes: the seeds of FuzzSniffH2C route as their content type
// says, whether the SETTINGS ack comes before or after the headers.
func TestSniffH2CRoutes(t *testing.T) {
	settings := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0}
	ack := []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}
	headers := func(ct string) []byte {
		block := append([]byte{0x83, 0x0f, 0x10, byte(len(ct))}, ct...)
		return append([]byte{0, 0, byte(len(block)), 1, 4, 0, 0, 0, 1}, block...)
	}
	for _, tc := range []struct {
		name string
		in   [][]byte
		grpc bool
	}{
		{"grpc, ack first", [][]byte{settings, ack, headers("application/grpc")}, true},
		{"grpc+proto, ack last", [][]byte{settings, headers("application/grpc+proto"), ack}, true},
		{"json", [][]byte{settings, headers("application/json"), ack}, false},
	} {
		in := []byte(http2Preface[3:])
		for _, b := range tc.in {
			in = append(in, b...)
		}
		replay, grpc, err := sniffH2C(&fakeH2CConn{r: bytes.NewReader(in)}, []byte(http2Preface[:3]))
		if err != nil || grpc != tc.grpc {
			t.Errorf("%s: grpc %v, err %v; want grpc %v", tc.name, grpc, err, tc.grpc)
			continue
		}
		if bytes.Contains(replay[len(http2Preface):], ack) {
			t.Errorf("%s: the mux's SETTINGS ack is replayed to the server", tc.name)
		}
	}
}
