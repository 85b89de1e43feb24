package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rewardpool/rewardpool/internal/drawbatch"
)

// httpTarget gives each worker its own http.Transport limited to one
// connection, so every worker holds its own HTTP/1.1 keep-alive
// connection (HTTP/2 is not negotiated, also over TLS).
type httpTarget struct {
	cfg  *Config
	base string // scheme://host:port
	body []byte
	auth string
}

func newHTTPTarget(cfg *Config) (*httpTarget, error) {
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	t := &httpTarget{
		cfg:  cfg,
		base: scheme + "://" + cfg.Addr,
		body: fmt.Appendf(nil, `{"count":%d}`, cfg.Count),
	}
	if cfg.Compact {
		t.body = fmt.Appendf(nil, `{"count":%d,"compact":true}`, cfg.Count)
	}
	if cfg.Token != "" {
		t.auth = "Bearer " + cfg.Token
	}
	return t, nil
}

func (t *httpTarget) Close() error { return nil }

func (t *httpTarget) NewClient(ctx context.Context, w int) (Client, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSClientConfig:     t.cfg.TLS,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	pool := t.cfg.poolFor(w)
	path := "/v1/pools/" + url.PathEscape(pool) + "/draw"
	if t.cfg.Noop {
		path = "/v1/noop/" + url.PathEscape(pool)
	}
	return &httpClient{t: t, url: t.base + path, tr: tr, hc: &http.Client{Transport: tr}}, nil
}

type httpClient struct {
	t     *httpTarget
	url   string // the draw (or noop) route of this worker's pool
	tr    *http.Transport
	hc    *http.Client
	buf   bytes.Buffer
	resp  httpDrawResponse
	draws []drawbatch.Draw // compact answers, expanded
}

type httpDraw struct {
	RequestID json.RawMessage `json:"request_id"` // a JSON number or string
	ItemID    string          `json:"item_id"`
	Error     string          `json:"error"`
}

type httpDrawResponse struct {
	Draws []httpDraw `json:"draws"`
}

func (c *httpClient) Do(ctx context.Context, res []Result) {
	for i := range res {
		start := time.Now()
		err := c.one(ctx, &res[i])
		res[i].Latency = time.Since(start)
		if err != nil {
			res[i].Err = err
		}
	}
}

func (c *httpClient) one(ctx context.Context, r *Result) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.t.body))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if c.t.auth != "" {
		req.Header["Authorization"] = []string{c.t.auth}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		msg := c.buf.Bytes()
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return &KindError{"http:" + strconv.Itoa(resp.StatusCode), string(bytes.TrimSpace(msg))}
	}
	if c.t.cfg.Compact {
		return c.compact(r)
	}
	c.resp.Draws = c.resp.Draws[:0]
	if err := json.Unmarshal(c.buf.Bytes(), &c.resp); err != nil {
		return &KindError{"bad_response", err.Error()}
	}
	if len(c.resp.Draws) != c.t.cfg.Count {
		return &KindError{"bad_response", fmt.Sprintf("%d draws in the reply, want %d", len(c.resp.Draws), c.t.cfg.Count)}
	}
	for i := range c.resp.Draws {
		d := &c.resp.Draws[i]
		if len(d.RequestID) > 0 && !validID(d.RequestID) {
			return &KindError{"bad_response", "request_id " + string(d.RequestID)}
		}
		if d.Error != "" {
			r.FailedDraw++
			r.FailKind = d.Error
		}
		*d = httpDraw{}
	}
	r.Draws = len(c.resp.Draws)
	return nil
}

// compact checks a compact answer ({"batch":...}; a server that predates
// it answers plainly, which is read too).
func (c *httpClient) compact(r *Result) error {
	var err error
	if c.draws, err = drawbatch.DecodeJSON(c.buf.Bytes(), c.draws[:0]); err != nil {
		return &KindError{"bad_response", err.Error()}
	}
	if len(c.draws) != c.t.cfg.Count {
		return &KindError{"bad_response", fmt.Sprintf("%d draws in the reply, want %d", len(c.draws), c.t.cfg.Count)}
	}
	for _, d := range c.draws {
		if d.Error != "" {
			r.FailedDraw++
			r.FailKind = d.Error
		}
	}
	r.Draws = len(c.draws)
	return nil
}

// validID reports whether raw is a uint64 as a JSON number or string.
func validID(raw []byte) bool {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	_, err := strconv.ParseUint(string(raw), 10, 64)
	return err == nil
}

func (c *httpClient) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}
