package server

import (
	"unicode/utf8"
)

// fastDrawBody parses the draw bodies clients send in practice without
// encoding/json and without allocating (except the key, which the engine
// keeps): an object of count (a JSON integer, or a string of digits),
// idempotency_key (a string without escapes) and compact (true or false),
// each at most once, with JSON whitespace around tokens. It reports false
// for anything else, valid or not (escapes, duplicates, unknown fields, bad
// syntax), and parseDrawBody then takes the general path, which gives the
// same answer and the errors their exact messages. So the two must agree on
// every body the fast one accepts: FuzzParseDrawBody checks that.
func fastDrawBody(b []byte) (drawBody, bool) {
	out := drawBody{Count: 1}
	i := skipWS(b, 0)
	if i == len(b) {
		return out, true // empty or only whitespace: one draw
	}
	if b[i] != '{' {
		return out, false
	}
	i = skipWS(b, i+1)
	var seen [3]bool
	if i < len(b) && b[i] == '}' {
		return out, skipWS(b, i+1) == len(b)
	}
	for {
		name, j, ok := plainString(b, i)
		if !ok {
			return out, false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return out, false
		}
		i = skipWS(b, i+1)
		switch string(name) { // no allocation: compared, not kept
		case "count":
			if seen[0] {
				return out, false
			}
			seen[0] = true
			n, j, ok := plainInt(b, i)
			if !ok {
				return out, false
			}
			out.Count, i = n, j
		case "idempotency_key":
			if seen[1] {
				return out, false
			}
			seen[1] = true
			key, j, ok := plainString(b, i)
			if !ok || !utf8.Valid(key) {
				return out, false
			}
			out.Key, i = string(key), j
		case "compact":
			if seen[2] {
				return out, false
			}
			seen[2] = true
			switch {
			case hasWord(b, i, "true"):
				out.Compact, i = true, i+4
			case hasWord(b, i, "false"):
				out.Compact, i = false, i+5
			default:
				return out, false
			}
		default:
			return out, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return out, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return out, skipWS(b, i+1) == len(b)
		default:
			return out, false
		}
	}
}

// skipWS skips JSON whitespace from i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at i that has no escapes and no control
// characters, returning its content and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, i, false
		}
	}
	return nil, i, false
}

// plainInt reads count: a JSON integer (-?digits, no leading zero, no
// fraction or exponent) or a string holding -?digits, that fits an int64.
func plainInt(b []byte, i int) (int64, int, bool) {
	quoted := i < len(b) && b[i] == '"'
	if quoted {
		i++
	}
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start := i
	var n uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if i-start >= 18 {
			return 0, i, false // may not fit: the general path decides
		}
		n = n*10 + uint64(b[i]-'0')
		i++
	}
	digits := i - start
	if digits == 0 || (!quoted && digits > 1 && b[start] == '0') {
		return 0, i, false
	}
	if quoted {
		if i >= len(b) || b[i] != '"' {
			return 0, i, false
		}
		i++
	} else if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, i, false
	}
	v := int64(n)
	if neg {
		v = -v
	}
	return v, i, true
}

// hasWord reports whether b holds word at i.
func hasWord(b []byte, i int, word string) bool {
	return len(b)-i >= len(word) && string(b[i:i+len(word)]) == word
}
