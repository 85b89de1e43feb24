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
// the body said (1 when absent) and Key is the body's idempotency_key,
// exactly: valid UTF-8, and never a U+FFFD the body did not spell (invalid
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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
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
		// Success: the body is empty or a JSON object with at most the two
		// known fields, each once.
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
