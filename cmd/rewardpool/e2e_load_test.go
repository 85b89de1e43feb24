package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// httpLoad is a set of HTTP clients drawing 1-3 at a time from one pool
// until stopped, recording every acknowledged draw. Only a 200 with a
// complete answer is an acknowledgement.
type httpLoad struct {
	mu          sync.Mutex
	acked       map[uint64]string // request id -> item id or "FAILED"; guarded by mu
	n           atomic.Int64      // acknowledged draws
	unavailable atomic.Int64      // 503 UNAVAILABLE answers, when allowed
	killed      atomic.Bool       // set before killing the server: failures after it are expected
	err         atomic.Value      // first unexpected failure (string)
	wg          sync.WaitGroup
	done        chan struct{}
	once        sync.Once
	tr          *http.Transport
}

// startHTTPLoad starts clients against url (a draw route). allow503
// counts 503 UNAVAILABLE answers (a draw not confirmed by replicas in
// time) instead of failing on them.
func startHTTPLoad(t *testing.T, url string, clients, maxRequests int, seed uint64, allow503 bool) *httpLoad {
	l := &httpLoad{acked: map[uint64]string{}, done: make(chan struct{}),
		tr: &http.Transport{MaxIdleConnsPerHost: clients}}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: l.tr}
	fail := func(format string, args ...any) {
		if !l.killed.Load() {
			l.err.CompareAndSwap(nil, fmt.Sprintf(format, args...))
		}
	}
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), seed))
			for range maxRequests {
				select {
				case <-l.done:
					return
				default:
				}
				count := 1 + rng.IntN(3)
				resp, err := hc.Post(url, "application/json", strings.NewReader(fmt.Sprintf(`{"count": %d}`, count)))
				if err != nil {
					fail("draw: %v", err)
					return // the server is gone (or failing): stop
				}
				var out struct {
					Draws []e2eDraw
					Code  string
				}
				derr := json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if allow503 && resp.StatusCode == http.StatusServiceUnavailable && derr == nil && out.Code == "UNAVAILABLE" {
					l.unavailable.Add(1)
					continue // durable on the primary perhaps, but not acknowledged
				}
				if resp.StatusCode != 200 || derr != nil || len(out.Draws) != count {
					fail("draw: status %d, code %q, %d draws, %v", resp.StatusCode, out.Code, len(out.Draws), derr)
					return
				}
				l.mu.Lock()
				recordAcks(t, l.acked, out.Draws)
				l.mu.Unlock()
				l.n.Add(int64(count))
			}
		}()
	}
	return l
}

// stop ends the load and waits for every client. Idempotent.
func (l *httpLoad) stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
	l.tr.CloseIdleConnections()
}

// errText is the first unexpected failure, or "".
func (l *httpLoad) errText() string {
	if e := l.err.Load(); e != nil {
		return "load failed: " + e.(string)
	}
	return ""
}
