package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/pool"
	"google.golang.org/grpc/codes"
)

// routes is the HTTP/JSON API: the same service layer as gRPC.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pools/{pool}/draw", func(w http.ResponseWriter, r *http.Request) {
		s.serveDraw(w, r, r.PathValue("pool"), false)
	})
	mux.HandleFunc("POST /v1/noop/{pool}", func(w http.ResponseWriter, r *http.Request) {
		s.serveDraw(w, r, r.PathValue("pool"), true)
	})
	mux.HandleFunc("GET /v1/pools", s.guard(accessRead, s.handleListPools))
	mux.HandleFunc("GET /v1/pools/{pool}", s.guard(accessRead, s.handleGetPool))
	mux.HandleFunc("GET /v1/pools/{pool}/odds", s.guard(accessRead, s.handleOdds))
	mux.HandleFunc("GET /v1/pools/{pool}/users/{user}", s.guard(accessRead, s.handlePlayer))
	mux.HandleFunc("GET /v1/pools/{pool}/rules", s.guard(accessRead, s.handleGetRules))
	mux.HandleFunc("PUT /v1/pools/{pool}/rules", s.guard(accessAdmin, s.handlePutRules))
	mux.HandleFunc("GET /v1/replication", s.guard(accessRead, s.handleReplication))
	mux.HandleFunc("POST /v1/promote", s.guard(accessAdmin, s.handlePromote))
	mux.HandleFunc("PUT /v1/pools/{pool}/items/{item}", s.guard(accessAdmin, s.handlePutItem))
	mux.HandleFunc("DELETE /v1/pools/{pool}/items/{item}", s.guard(accessAdmin, s.handleDeleteItem))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, errorf(codes.NotFound, nil, "no route for %s %s", r.Method, r.URL.Path))
	})
	return &drawRouter{s: s, mux: mux}
}

// drawRouter sends the common draw and noop requests straight to their
// handler and everything else to the mux. The mux allocates its match for
// every request with a path value; the hot route does not need it. Only
// paths the mux would route the same way are taken: POST, the path as
// sent (no escapes), one plain segment for the pool.
type drawRouter struct {
	s   *Server
	mux *http.ServeMux
}

func (d *drawRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.RawPath == "" {
		if pool, ok := poolSegment(r.URL.Path, "/v1/pools/", "/draw"); ok {
			d.s.serveDraw(w, r, pool, false)
			return
		}
		if pool, ok := poolSegment(r.URL.Path, "/v1/noop/", ""); ok {
			d.s.serveDraw(w, r, pool, true)
			return
		}
	}
	d.mux.ServeHTTP(w, r)
}

// poolSegment returns the pool of path = prefix + pool + suffix, when pool
// is one clean path segment (not empty, ".", ".." or holding a slash).
func poolSegment(path, prefix, suffix string) (string, bool) {
	if !strings.HasPrefix(path, prefix) || !strings.HasSuffix(path, suffix) || len(path) < len(prefix)+len(suffix) {
		return "", false
	}
	pool := path[len(prefix) : len(path)-len(suffix)]
	if pool == "" || pool == "." || pool == ".." || strings.IndexByte(pool, '/') >= 0 {
		return "", false
	}
	return pool, true
}

// guard checks the bearer token and bounds the request body.
func (s *Server) guard(level access, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.auth.check(level, bearer(r.Header.Get("Authorization"))); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rewardpool"`)
			s.writeError(w, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.Limits.MaxBodyBytes))
		s.bodyDeadline(w, r)
		h(w, r)
	}
}

// bodyDeadline: the headers are in, the body has connections.body_timeout
// to arrive, so a client that stalls mid-body cannot hold the connection
// (and its handler) forever.
func (s *Server) bodyDeadline(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	deadline := time.Now().Add(time.Duration(s.cfg.Connections.BodyTimeout))
	// net/http's own writers have the method; asking them directly saves
	// the ResponseController's allocation on the draw path.
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(deadline)
		return
	}
	http.NewResponseController(w).SetReadDeadline(deadline)
}

// httpStatus maps service codes to HTTP statuses.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return http.StatusConflict
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Canceled:
		return 499 // client closed request
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// codeName is the JSON name of a code: "INVALID_ARGUMENT", like gRPC's.
func codeName(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.AlreadyExists:
		return "ALREADY_EXISTS"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.Canceled:
		return "CANCELLED"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.OutOfRange:
		return "OUT_OF_RANGE"
	}
	return "INTERNAL"
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	se := asError(err)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		se = errorf(codes.ResourceExhausted, err, "request body is larger than %d bytes", tooBig.Limit)
	}
	s.metrics.countRequest("http", se.Code)
	name, code := codeName(se.Code), httpStatus(se.Code)
	if se.Reason != "" {
		name, code = se.Reason, reasonStatus(se.Reason, code)
	}
	if errors.Is(err, errBodyTimeout) {
		// 408, and the connection closes: the rest of the body may still
		// be on its way.
		code = http.StatusRequestTimeout
		w.Header().Set("Connection", "close")
	}
	b := []byte(`{"code":`)
	b = appendJSONString(b, name)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, se.Message)
	b = append(b, '}')
	writeJSON(w, code, b)
}

// reasonStatus is the HTTP status of an error with a Reason, where it
// differs from its gRPC code's status.
func reasonStatus(reason string, byCode int) int {
	switch reason {
	case ReasonOutcomeUnknown:
		// 503, as a failing disk always was; the code OUTCOME_UNKNOWN tells
		// the client to retry only with the same idempotency key.
		return http.StatusServiceUnavailable
	case ReasonIdempotencyMismatch:
		// As the IETF Idempotency-Key draft says for a key reused with a
		// different payload.
		return http.StatusUnprocessableEntity
	case ReasonUserLimit:
		return http.StatusTooManyRequests
	case ReasonPoolClosed:
		return http.StatusForbidden
	}
	return byCode
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	// Shared header values: net/http only reads them. Setting the map
	// entries directly saves Header.Set's allocation of a new slice.
	h["Content-Type"] = jsonContentType
	if len(body)+1 > smallAnswer {
		h["Content-Length"] = []string{strconv.Itoa(len(body) + 1)}
	}
	// A small answer's Content-Length is set by net/http itself: it sees
	// the whole answer in its buffer when the handler returns.
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

var jsonContentType = []string{"application/json"}

// smallAnswer is the largest answer net/http buffers whole (its
// bufferBeforeChunkingSize, 2048), with a margin; above it the answer
// would go out chunked without an explicit Content-Length.
const smallAnswer = 1900

// errBodyTimeout: the client did not send its body within
// connections.body_timeout.
var errBodyTimeout = errors.New("request body timeout")

// readBody reads the (size-limited) body; errors are 413, 408 or 400.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, errorf(codes.DeadlineExceeded, errBodyTimeout, "request body: not received within connections.body_timeout")
		}
		return nil, errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, "reading body: %v", err)
	}
	return b, nil
}

// drawBody is a parsed draw request body.
type drawBody struct {
	Count   int64 // 1 when absent
	Key     string
	User    string
	Compact bool // answer with a DrawBatch
}

// parseDrawBody parses {"count": N, "idempotency_key": "...", "user_id":
// "...", "compact": true}; every field is optional, an empty body means one
// draw. count may be a JSON number or a string holding one (as protojson
// writes 64-bit integers); compact is a JSON boolean. Errors name the field
// and are INVALID_ARGUMENT.
func parseDrawBody(b []byte) (drawBody, error) {
	if out, ok := fastDrawBody(b); ok {
		return out, nil
	}
	return parseDrawBodyJSON(b)
}

// parseDrawBodyJSON is parseDrawBody through encoding/json: every body, and
// every error message.
func parseDrawBodyJSON(b []byte) (drawBody, error) {
	out := drawBody{Count: 1}
	if len(bytes.TrimSpace(b)) == 0 {
		return out, nil
	}
	fields, err := parseObject(b)
	if err != nil {
		return out, err
	}
	for name, raw := range fields {
		switch name {
		case "count":
			n, err := parseInt(raw)
			if err != nil {
				return out, invalid("count: %v", err)
			}
			out.Count = n
		case "idempotency_key":
			key, err := parseKey(raw)
			if err != nil {
				return out, invalid("idempotency_key: %v", err)
			}
			out.Key = key
		case "user_id":
			// Checked like a key: exactly the bytes the client sent.
			user, err := parseKey(raw)
			if err != nil {
				return out, invalid("user_id: %v", err)
			}
			out.User = user
		case "compact":
			switch string(raw) {
			case "true":
				out.Compact = true
			case "false":
				out.Compact = false
			default:
				return out, invalid("compact: want true or false, got %s", raw)
			}
		default:
			return out, invalid("unknown field %q (want count, idempotency_key, user_id, compact)", name)
		}
	}
	return out, nil
}

// parseKey reads a JSON string holding an idempotency key. Keys are
// compared byte for byte, so the key must be exactly what the client sent:
// encoding/json would turn invalid UTF-8 and lone surrogate escapes
// ("\ud800") into U+FFFD, making "a\xff", "a\xfe" and "a\uFFFD" one key.
// Such keys are refused instead of rewritten.
func parseKey(raw json.RawMessage) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", errors.New("want a string")
	}
	if !utf8.Valid(raw) {
		return "", errors.New("not valid UTF-8")
	}
	if err := checkSurrogates(raw[1 : len(raw)-1]); err != nil {
		return "", err
	}
	var key string
	if err := json.Unmarshal(raw, &key); err != nil {
		return "", errors.New("want a string")
	}
	return key, nil
}

// checkSurrogates checks the \u escapes of a JSON string's body: a high
// surrogate (D800-DBFF) must be followed at once by an escaped low one
// (DC00-DFFF), and a low one must not stand alone.
func checkSurrogates(body []byte) error {
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if i >= len(body) || body[i] != 'u' {
			continue
		}
		r, ok := hex4(body[i+1:])
		if !ok {
			continue // malformed: json.Unmarshal reports it
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("lone surrogate \\u%04x is not a character", r)
		case r >= 0xD800 && r <= 0xDBFF:
			rest := body[i+1:]
			if len(rest) < 2 || rest[0] != '\\' || rest[1] != 'u' {
				return fmt.Errorf("lone surrogate \\u%04x is not a character", r)
			}
			lo, ok := hex4(rest[2:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("lone surrogate \\u%04x is not a character", r)
			}
			i += 6
		}
	}
	return nil
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func invalid(format string, args ...any) error {
	return errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, format, args...)
}

// parseObject decodes a JSON object into its raw fields, rejecting
// anything else (arrays, trailing data, duplicate keys).
func parseObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, invalid("body: want a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("body: malformed JSON: %v", err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("body: malformed JSON at %q: %v", name, err)
		}
		if _, dup := fields[name]; dup {
			return nil, invalid("%s: given twice", name)
		}
		fields[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid("body: malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("body: trailing data after the JSON object")
	}
	return fields, nil
}

// parseInt reads a JSON integer, or a string holding one.
func parseInt(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("want an integer")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %s", raw)
	}
	return n, nil
}

// readDrawBody reads (into sc.buf, limited to limits.max_body_bytes) and
// parses a draw body, answering the error itself. The query parameter
// compact=1 (or true) asks for the compact answer, as the body's
// "compact": true does.
func (s *Server) readDrawBody(w http.ResponseWriter, r *http.Request, sc *drawScratch) (drawBody, bool) {
	b, err := s.readLimited(w, r, sc.buf[:0])
	sc.buf = b[:0]
	if err == nil {
		var body drawBody
		if body, err = parseDrawBody(b); err == nil {
			var q bool
			if q, err = compactQuery(r.URL.RawQuery); err == nil {
				body.Compact = body.Compact || q
				return body, true
			}
		}
	}
	s.writeError(w, err)
	return drawBody{}, false
}

// readLimited is readBody for the draw route: it reads into buf (pooled)
// instead of a new slice, and applies limits.max_body_bytes itself instead
// of through a new http.MaxBytesReader. A body over the limit is handed to
// one after all, so that the error and the connection's fate are exactly
// MaxBytesReader's (413, and the connection closes).
func (s *Server) readLimited(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	limit := int(s.cfg.Limits.MaxBodyBytes)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			over := http.MaxBytesReader(w, io.NopCloser(io.MultiReader(bytes.NewReader(buf), r.Body)), int64(limit))
			_, err := readBody(&http.Request{Body: over})
			return buf, err
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			_, err = readBody(&http.Request{Body: io.NopCloser(&failingReader{err})})
			return buf, err
		}
	}
}

// failingReader fails with err: readBody's error mapping for a read error.
type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

// compactQuery reads the draw routes' query parameter compact=1|true|0|false.
// Other parameters are ignored, as they always were on these routes (a
// client may add its own, e.g. to defeat a cache); a compact given twice or
// with another value is INVALID_ARGUMENT.
func compactQuery(raw string) (bool, error) {
	switch raw {
	case "":
		return false, nil
	case "compact=1", "compact=true":
		return true, nil // what clients send: read without a map
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return false, invalid("query: %v", err)
	}
	vals := q["compact"]
	if len(vals) == 0 {
		return false, nil
	}
	if len(vals) != 1 {
		return false, invalid("compact: given %d times", len(vals))
	}
	switch vals[0] {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, invalid("compact: want 1, true, 0 or false, got %q", vals[0])
}

// serveDraw serves POST /v1/pools/{pool}/draw (noop false) and
// POST /v1/noop/{pool} (noop true): guarded like the other routes, with the
// body read into the pooled scratch, so that a draw allocates nothing of
// its own.
func (s *Server) serveDraw(w http.ResponseWriter, r *http.Request, pool string, noop bool) {
	start := time.Now()
	if err := s.auth.check(accessClient, bearer(r.Header.Get("Authorization"))); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rewardpool"`)
		s.writeError(w, err)
		return
	}
	s.bodyDeadline(w, r)
	sc := getScratch()
	defer putScratch(sc)
	body, ok := s.readDrawBody(w, r, sc)
	if !ok {
		return
	}
	if noop {
		if err := s.noopInto(sc, pool, body.Count, body.User); err != nil {
			s.writeError(w, err)
			return
		}
		s.writeDraws(w, sc, body.Compact)
		return
	}
	if err := s.drawInto(r.Context(), sc, pool, body.Count, body.Key, body.User); err != nil {
		s.writeError(w, err)
		return
	}
	s.observe(pool, "http", start, sc)
	s.metrics.countRequest("http", codes.OK)
	s.writeDraws(w, sc, body.Compact)
}

// writeDraws answers a draw: the plain {"draws":[...]} or, when asked for,
// the compact {"batch":{...}}.
func (s *Server) writeDraws(w http.ResponseWriter, sc *drawScratch, compact bool) {
	if compact && sc.compact() {
		sc.buf = sc.bd.Batch().AppendJSON(sc.buf[:0], appendJSONString)
	} else {
		sc.buf = appendDraws(sc.buf[:0], sc.res)
	}
	writeJSON(w, http.StatusOK, sc.buf)
}

// appendDraws writes {"draws":[{"request_id":101,"item_id":"gold"},...]}.
func appendDraws(b []byte, res []rewardpool.DrawResult) []byte {
	b = append(b, `{"draws":[`...)
	for i, r := range res {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"request_id":`...)
		b = strconv.AppendUint(b, r.RequestID, 10)
		if out := drawOutcome(r); out != "" {
			b = append(b, `,"error":`...)
			b = appendJSONString(b, out)
		} else {
			b = append(b, `,"item_id":`...)
			b = appendJSONString(b, r.ItemID)
		}
		if r.Pity != "" {
			b = append(b, `,"pity":`...)
			b = appendJSONString(b, r.Pity)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func appendPool(b []byte, v poolView) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, v.Name)
	b = append(b, `,"last_request_id":`...)
	b = strconv.AppendUint(b, v.State.LastRequestID, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, v.State.Seq, 10)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, v.State.Epoch, 10)
	b = append(b, `,"state_digest":`...)
	b = appendJSONString(b, v.Digest)
	b = append(b, `,"items":[`...)
	for i, it := range v.State.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, it.ID)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, it.Quantity, 10)
		b = append(b, `,"weight":`...)
		b = append(b, pool.FormatWeight(it.Weight)...)
		if n, ok := v.State.Available[it.ID]; ok {
			b = append(b, `,"available":`...)
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func (s *Server) handleListPools(w http.ResponseWriter, r *http.Request) {
	views, err := s.listPools(r.Context())
	if err != nil {
		s.writeError(w, err)
		return
	}
	b := []byte(`{"pools":[`)
	for i, v := range views {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPool(b, v)
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

func (s *Server) handleGetPool(w http.ResponseWriter, r *http.Request) {
	v, err := s.getPool(r.Context(), r.PathValue("pool"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, appendPool(nil, v))
}

// handlePutItem takes {"quantity": N, "weight": W}; on an existing item
// either may be left out. The weight is read from its literal JSON text, so
// 0.1 is exactly 100000 units.
func (s *Server) handlePutItem(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	fields, err := parseObject(b)
	if err != nil {
		s.writeError(w, err)
		return
	}
	var quantity *int64
	var weight *uint64
	for name, raw := range fields {
		switch name {
		case "quantity":
			n, err := parseInt(raw)
			if err != nil {
				s.writeError(w, invalid("quantity: %v", err))
				return
			}
			quantity = &n
		case "weight":
			text := string(raw)
			if len(text) >= 2 && text[0] == '"' {
				json.Unmarshal(raw, &text)
			}
			u, err := pool.ParseWeight(text)
			if err != nil {
				s.writeError(w, errorf(codes.InvalidArgument, rewardpool.ErrInvalidItem, "weight: %v", err))
				return
			}
			weight = &u
		default:
			s.writeError(w, invalid("unknown field %q (want quantity, weight)", name))
			return
		}
	}
	v, err := s.putItem(r.Context(), r.PathValue("pool"), r.PathValue("item"), quantity, weight)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, appendPool(nil, v))
}

func (s *Server) handleDeleteItem(w http.ResponseWriter, r *http.Request) {
	v, err := s.deleteItem(r.Context(), r.PathValue("pool"), r.PathValue("item"))
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, appendPool(nil, v))
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
