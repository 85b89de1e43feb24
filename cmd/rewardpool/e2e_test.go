package main

// End-to-end tests: build the real binary, run it as a child process on
// 127.0.0.1:0 with a temporary data directory, and talk to it over HTTP
// and gRPC. Every process a test starts, it stops (SIGTERM, or SIGKILL in
// cleanup); every wait is bounded.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const (
	e2eAdminToken = "e2e-admin-token"
	startTimeout  = 30 * time.Second // listen + recover
	stopTimeout   = 30 * time.Second // SIGTERM to exit
)

// TestE2E builds the binary once (into the parent test's temp dir, so it
// is removed afterwards) and runs the end-to-end scenarios on it.
func TestE2E(t *testing.T) {
	bin := buildBinary(t)
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, bin) })
	t.Run("KillUnderLoad", func(t *testing.T) { testKillUnderLoad(t, bin) })
	t.Run("CLI", func(t *testing.T) { testCLI(t, bin) })
	t.Run("EarlySIGTERM", func(t *testing.T) {
		// SIGTERM as soon as the server says it listens (possibly while it
		// recovers) still stops it cleanly, and the data stays usable.
		dir := t.TempDir()
		cfg := writeConfig(t, dir, lifecycleConfig)
		for range 3 {
			s := startListening(t, bin, filepath.Join(dir, "data"), cfg)
			s.stop()
		}
		s := startServer(t, bin, filepath.Join(dir, "data"), cfg)
		httpDraw(t, s.addr, "prizes", 1)
		s.stop()
	})
}

func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "rewardpool")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The test runs in the package directory, cmd/rewardpool.
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ---------------------------------------------------------------------------
// Child processes

// logWriter collects a child's stderr and signals every write.
type logWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // capacity 1
}

func newLogWriter() *logWriter { return &logWriter{changed: make(chan struct{}, 1)} }

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// serverProc is one running `rewardpool serve`.
type serverProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	log     *logWriter
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done
	addr    string
}

var listeningRE = regexp.MustCompile(`msg="rewardpool: listening" addr=(\S+)`)

// startServer runs `rewardpool serve` on 127.0.0.1:0 and waits (bounded)
// until it listens and has recovered.
func startServer(t *testing.T, bin, dataDir, cfgPath string) *serverProc {
	t.Helper()
	s := startListening(t, bin, dataDir, cfgPath)
	s.waitLog(regexp.MustCompile(`msg="rewardpool: ready"`), startTimeout)
	return s
}

// startListening is startServer without waiting for recovery; extra
// arguments go to serve.
func startListening(t *testing.T, bin, dataDir, cfgPath string, extra ...string) *serverProc {
	t.Helper()
	s := &serverProc{t: t, log: newLogWriter(), done: make(chan struct{})}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--config", cfgPath}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
			return
		default:
		}
		s.cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			t.Errorf("server pid %d did not exit after SIGKILL", s.cmd.Process.Pid)
		}
	})
	m := s.waitLog(listeningRE, startTimeout)
	s.addr = m[1]
	return s
}

// waitLog waits until the log matches re and returns the submatches.
func (s *serverProc) waitLog(re *regexp.Regexp, timeout time.Duration) []string {
	s.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if m := re.FindStringSubmatch(s.log.String()); m != nil {
			return m
		}
		select {
		case <-s.log.changed:
		case <-s.done:
			if m := re.FindStringSubmatch(s.log.String()); m != nil {
				return m
			}
			s.t.Fatalf("server exited (%v) before logging %q; log:\n%s", s.waitErr, re, s.log.String())
		case <-timer.C:
			s.t.Fatalf("server did not log %q within %v; log:\n%s", re, timeout, s.log.String())
		}
	}
}

// stop sends SIGTERM and requires a clean exit (status 0) in bounded time.
func (s *serverProc) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.t.Fatalf("server did not exit within %v of SIGTERM; log:\n%s", stopTimeout, s.log.String())
	}
	if s.waitErr != nil {
		s.t.Fatalf("server exited with %v after SIGTERM; log:\n%s", s.waitErr, s.log.String())
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *serverProc) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.t.Fatalf("server did not exit after SIGKILL")
	}
}

// ---------------------------------------------------------------------------
// Clients

type e2eItem struct {
	ID       string          `json:"id"`
	Quantity int64           `json:"quantity"`
	Weight   json.RawMessage `json:"weight"`
}

type e2ePool struct {
	Name          string    `json:"name"`
	LastRequestID uint64    `json:"last_request_id"`
	Items         []e2eItem `json:"items"`
}

func (p e2ePool) quantities() map[string]int64 {
	m := map[string]int64{}
	for _, it := range p.Items {
		m[it.ID] = it.Quantity
	}
	return m
}

type e2eDraw struct {
	RequestID uint64 `json:"request_id"`
	ItemID    string `json:"item_id"`
	Error     string `json:"error"`
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

func httpDo(method, url, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func mustHTTP(t *testing.T, method, url, token, body string, want int) []byte {
	t.Helper()
	code, b, err := httpDo(method, url, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, code, want, b)
	}
	return b
}

func getPool(t *testing.T, addr, pool string) e2ePool {
	t.Helper()
	var p e2ePool
	if err := json.Unmarshal(mustHTTP(t, "GET", "http://"+addr+"/v1/pools/"+pool, "", "", 200), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func httpDraw(t *testing.T, addr, pool string, count int) []e2eDraw {
	t.Helper()
	var out struct{ Draws []e2eDraw }
	b := mustHTTP(t, "POST", "http://"+addr+"/v1/pools/"+pool+"/draw", "", fmt.Sprintf(`{"count": %d}`, count), 200)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Draws) != count {
		t.Fatalf("draw count %d: %s", count, b)
	}
	return out.Draws
}

func dialGRPC(t *testing.T, addr string) rpv1.RewardPoolClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rpv1.NewRewardPoolClient(conn)
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// walRecord is one line of `rewardpool wal dump`.
type walRecord struct {
	kind string // DRAW, ADD, SET, REMOVE, ...
	id   uint64 // DRAW: request id
	item string // DRAW: item id or "FAILED"; ADD/SET/REMOVE: item id
	qty  int64  // ADD/SET
}

// walDump runs `rewardpool wal dump` on a stopped server's data.
func walDump(t *testing.T, bin, dataDir, pool string) []walRecord {
	t.Helper()
	out, errOut, code := runCLI(t, bin, "wal", "dump", "--data-dir", dataDir, "--pool", pool)
	if code != 0 {
		t.Fatalf("wal dump: exit %d: %s", code, errOut)
	}
	var recs []walRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		r := walRecord{kind: f[0]}
		switch f[0] {
		case "DRAW":
			if len(f) != 3 {
				t.Fatalf("wal dump line %q", sc.Text())
			}
			id, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("wal dump line %q: %v", sc.Text(), err)
			}
			r.id, r.item = id, f[2]
		case "ADD", "SET":
			if len(f) != 4 {
				t.Fatalf("wal dump line %q", sc.Text())
			}
			q, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("wal dump line %q: %v", sc.Text(), err)
			}
			r.item, r.qty = f[1], q
		case "REMOVE":
			r.item = f[1]
		}
		recs = append(recs, r)
	}
	return recs
}

// runCLI runs the binary to completion (bounded) and returns stdout,
// stderr and the exit code.
func runCLI(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("rewardpool %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("rewardpool %v: timed out", args)
	}
	return stdout.String(), stderr.String(), code
}

// ---------------------------------------------------------------------------
// Scenarios

const lifecycleConfig = `# e2e lifecycle
admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
pools:
  - name: prizes
    items:
      - {id: gold, quantity: 30, weight: 10}
      - {id: silver, quantity: 60, weight: 30}
      - {id: mud, quantity: -1, weight: 60}
`

// testLifecycle: draws over HTTP and gRPC and an admin change survive a
// SIGTERM and a restart, and request ids keep rising.
func testLifecycle(t *testing.T, bin string) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, lifecycleConfig)

	s := startServer(t, bin, dataDir, cfg)
	base := "http://" + s.addr
	var maxID uint64
	for _, d := range httpDraw(t, s.addr, "prizes", 3) {
		maxID = max(maxID, d.RequestID)
	}
	rp := dialGRPC(t, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 4})
	if err != nil || len(resp.Draws) != 4 {
		t.Fatalf("gRPC draw: %v, %v", resp, err)
	}
	for _, d := range resp.Draws {
		if d.RequestId <= maxID {
			t.Fatalf("gRPC draw id %d not above the HTTP ids (max %d)", d.RequestId, maxID)
		}
		maxID = d.RequestId
	}
	// Admin: refused without the token, applied with it (HTTP and gRPC).
	mustHTTP(t, "PUT", base+"/v1/pools/prizes/items/gold", "", `{"quantity": 7, "weight": 0.25}`, 401)
	mustHTTP(t, "PUT", base+"/v1/pools/prizes/items/gold", e2eAdminToken, `{"quantity": 7, "weight": 0.25}`, 200)
	adminCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e2eAdminToken)
	qty, w := int64(3), 0.1
	if _, err := rp.PutItem(adminCtx, &rpv1.PutItemRequest{Pool: "prizes", ItemId: "ruby", Quantity: &qty, Weight: &w}); err != nil {
		t.Fatalf("gRPC PutItem: %v", err)
	}
	before := getPool(t, s.addr, "prizes")
	if before.LastRequestID != maxID {
		t.Fatalf("last_request_id %d, want %d", before.LastRequestID, maxID)
	}
	s.stop()
	for _, want := range []string{"rewardpool: shutting down", "rewardpool: stopped"} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("shutdown log lacks %q:\n%s", want, s.log.String())
		}
	}

	// Restart on the same data directory.
	s2 := startServer(t, bin, dataDir, cfg)
	after := getPool(t, s2.addr, "prizes")
	if fmt.Sprint(after.Items) != fmt.Sprint(before.Items) || after.LastRequestID != before.LastRequestID {
		t.Fatalf("state did not survive the restart:\nbefore %+v\nafter  %+v", before, after)
	}
	gold := after.quantities()["gold"]
	var goldWeight string
	for _, it := range after.Items {
		if it.ID == "gold" {
			goldWeight = string(it.Weight)
		}
	}
	if gold > 7 || goldWeight != "0.25" {
		t.Fatalf("admin change lost: gold quantity %d weight %s", gold, goldWeight)
	}
	if _, ok := after.quantities()["ruby"]; !ok {
		t.Fatalf("gRPC admin change lost: %+v", after)
	}
	if !regexp.MustCompile(`msg="rewardpool: recovered".*last_request_id=` + strconv.FormatUint(maxID, 10) + `\b`).MatchString(s2.log.String()) {
		t.Errorf("start-up log does not report the recovered last_request_id %d:\n%s", maxID, s2.log.String())
	}
	// The next id is above every earlier one, over both transports.
	d := httpDraw(t, s2.addr, "prizes", 1)
	if d[0].RequestID <= maxID {
		t.Fatalf("first id after restart %d, not above %d", d[0].RequestID, maxID)
	}
	rp2 := dialGRPC(t, s2.addr)
	resp, err = rp2.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes"})
	if err != nil || resp.Draws[0].RequestId <= d[0].RequestID {
		t.Fatalf("gRPC draw after restart: %v, %v", resp, err)
	}
	s2.stop()
}

const killConfig = `admin_token: ` + e2eAdminToken + `
durability: always
wal:
  keep_segments: 1000
pools:
  - name: load
    items:
      - {id: gold, quantity: 150, weight: 1}
      - {id: silver, quantity: 250, weight: 2}
      - {id: bronze, quantity: 400, weight: 3}
`

// testKillUnderLoad: kill -9 under load from 8 concurrent clients; every
// acknowledged draw is in the recovered log and state, nothing is
// over-issued, and ids keep rising.
func testKillUnderLoad(t *testing.T, bin string) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, killConfig)
	initial := map[string]int64{"gold": 150, "silver": 250, "bronze": 400}

	s := startServer(t, bin, dataDir, cfg)
	url := "http://" + s.addr + "/v1/pools/load/draw"
	const (
		clients     = 8
		killAfter   = 500  // acknowledged draws before the kill
		maxRequests = 5000 // per client, a bound on the loop
	)
	var (
		mu    sync.Mutex
		acked = map[uint64]string{} // request id -> item id or "FAILED"
		n     atomic.Int64
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var enoughOnce sync.Once
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for range maxRequests {
				count := 1 + rng.IntN(3)
				code, b, err := httpDo("POST", url, "", fmt.Sprintf(`{"count": %d}`, count))
				if err != nil || code != 200 {
					return // the server is gone (or failing): stop
				}
				var out struct{ Draws []e2eDraw }
				if err := json.Unmarshal(b, &out); err != nil || len(out.Draws) != count {
					t.Errorf("bad draw answer %q: %v", b, err)
					return
				}
				mu.Lock()
				recordAcks(t, acked, out.Draws)
				mu.Unlock()
				if n.Add(int64(count)) >= killAfter {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d draws acknowledged in 60s", n.Load())
	}
	s.kill()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var maxAcked uint64
	for id := range acked {
		maxAcked = max(maxAcked, id)
	}
	t.Logf("%d draws acknowledged before kill -9 (highest id %d)", len(acked), maxAcked)

	// Restart: the recovered state holds every acknowledged draw.
	s2 := startServer(t, bin, dataDir, cfg)
	st := getPool(t, s2.addr, "load")
	if st.LastRequestID < maxAcked {
		t.Fatalf("recovered last_request_id %d is below the acknowledged %d", st.LastRequestID, maxAcked)
	}
	next := httpDraw(t, s2.addr, "load", 1)
	if next[0].RequestID <= maxAcked || next[0].RequestID <= st.LastRequestID {
		t.Fatalf("first id after recovery %d, not above acknowledged %d / recovered %d", next[0].RequestID, maxAcked, st.LastRequestID)
	}
	final := getPool(t, s2.addr, "load")
	s2.stop()

	// The log, read offline: complete from the seed, each acknowledged
	// draw present with the same outcome, and the counts add up.
	recs := walDump(t, bin, dataDir, "load")
	logged := map[uint64]string{}
	drawn := map[string]int64{}
	seeded := map[string]int64{}
	for _, r := range recs {
		switch r.kind {
		case "ADD":
			seeded[r.item] = r.qty
		case "SET", "REMOVE":
			t.Fatalf("unexpected admin record %+v", r)
		case "DRAW":
			if _, dup := logged[r.id]; dup {
				t.Fatalf("request id %d logged twice", r.id)
			}
			logged[r.id] = r.item
			if r.item != "FAILED" {
				drawn[r.item]++
			}
		}
	}
	if fmt.Sprint(seeded) != fmt.Sprint(initial) {
		t.Fatalf("seed records %v, want %v (log incomplete?)", seeded, initial)
	}
	missing := 0
	for id, item := range acked {
		if got, ok := logged[id]; !ok || got != item {
			if missing < 10 {
				t.Errorf("acknowledged draw %d -> %s: logged as %q (present %v)", id, item, got, ok)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged draws missing or different in the log", missing, len(acked))
	}
	if got := logged[next[0].RequestID]; got != next[0].ItemID && !(got == "FAILED" && next[0].Error != "") {
		t.Errorf("post-recovery draw %d -> %s logged as %q", next[0].RequestID, next[0].ItemID, got)
	}
	q := final.quantities()
	for id, init := range initial {
		if q[id] < 0 {
			t.Errorf("item %s has quantity %d", id, q[id])
		}
		if init-drawn[id] != q[id] {
			t.Errorf("item %s: initial %d - %d drawn in the log = %d, but %d remain", id, init, drawn[id], init-drawn[id], q[id])
		}
	}
	if uint64(len(logged)) != final.LastRequestID {
		t.Errorf("%d draws in the log, last_request_id %d", len(logged), final.LastRequestID)
	}
}

// testCLI exercises the client subcommands and the usage and config
// error paths.
func testCLI(t *testing.T, bin string) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, lifecycleConfig)
	s := startServer(t, bin, filepath.Join(dir, "data"), cfg)

	out, errOut, code := runCLI(t, bin, "draw", "--addr", s.addr, "--pool", "prizes", "--count", "2")
	if code != 0 {
		t.Fatalf("draw: exit %d: %s", code, errOut)
	}
	var drawOut struct{ Draws []e2eDraw }
	if err := json.Unmarshal([]byte(out), &drawOut); err != nil || len(drawOut.Draws) != 2 {
		t.Fatalf("draw output %q: %v", out, err)
	}

	out, errOut, code = runCLI(t, bin, "state", "--addr", s.addr, "--pool", "prizes")
	var p e2ePool
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Name != "prizes" || p.LastRequestID != 2 {
		t.Fatalf("state: exit %d, %q, %s", code, out, errOut)
	}
	// From --count 100 on, draw asks for the compact answer and prints it
	// in the plain shape: the same draws as the compact answer itself
	// (replayed by the key).
	out, errOut, code = runCLI(t, bin, "draw", "--addr", s.addr, "--pool", "prizes", "--count", "120", "--key", "big")
	var expanded struct{ Draws []e2eDraw }
	if code != 0 || json.Unmarshal([]byte(out), &expanded) != nil || len(expanded.Draws) != 120 {
		t.Fatalf("draw --count 120: exit %d, %.200q, %s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, bin, "draw", "--addr", s.addr, "--pool", "prizes", "--count", "120", "--key", "big", "--compact")
	var compact struct {
		Batch struct {
			FirstRequestID uint64   `json:"first_request_id"`
			ItemIDs        []string `json:"item_ids"`
			Errors         []string `json:"errors"`
			OutcomeIndex   []int    `json:"outcome_index"`
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &compact) != nil || len(compact.Batch.OutcomeIndex) != 120 {
		t.Fatalf("draw --compact: exit %d, %.200q, %s", code, out, errOut)
	}
	for i, d := range expanded.Draws {
		want := e2eDraw{RequestID: compact.Batch.FirstRequestID + uint64(i)}
		if x, k := compact.Batch.OutcomeIndex[i], len(compact.Batch.ItemIDs); x < k {
			want.ItemID = compact.Batch.ItemIDs[x]
		} else {
			want.Error = compact.Batch.Errors[x-k]
		}
		if d != want {
			t.Fatalf("draw %d printed %+v, the compact answer says %+v", i, d, want)
		}
	}
	if first := expanded.Draws[0].RequestID; first != 3 {
		t.Errorf("first request id %d, want 3", first)
	}
	out, _, code = runCLI(t, bin, "state", "--addr", s.addr, "--all")
	var all struct{ Pools []e2ePool }
	if code != 0 || json.Unmarshal([]byte(out), &all) != nil || len(all.Pools) != 1 {
		t.Fatalf("state --all: exit %d, %q", code, out)
	}

	// admin set: refused without the token, applied with it.
	_, errOut, code = runCLI(t, bin, "admin", "set", "--addr", s.addr, "--pool", "prizes", "--id", "ruby", "--quantity", "5", "--weight", "0.1")
	if code == 0 || !strings.Contains(errOut, "401") {
		t.Fatalf("admin set without token: exit %d, %s", code, errOut)
	}
	out, errOut, code = runCLI(t, bin, "admin", "set", "--addr", s.addr, "--pool", "prizes", "--id", "ruby", "--quantity", "5", "--weight", "0.1", "--token", e2eAdminToken)
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil {
		t.Fatalf("admin set: exit %d, %q, %s", code, out, errOut)
	}
	if it := getPool(t, s.addr, "prizes"); it.quantities()["ruby"] != 5 {
		t.Fatalf("after admin set: %+v", it)
	}
	if !strings.Contains(out, `"weight": 0.1`) {
		t.Errorf("admin set output lacks the exact weight: %s", out)
	}
	_, errOut, code = runCLI(t, bin, "admin", "remove", "--addr", s.addr, "--pool", "prizes", "--id", "ruby", "--token", e2eAdminToken)
	if code != 0 {
		t.Fatalf("admin remove: exit %d: %s", code, errOut)
	}
	if _, ok := getPool(t, s.addr, "prizes").quantities()["ruby"]; ok {
		t.Fatal("ruby still there after admin remove")
	}
	// A client error is reported with the server's message, exit non-zero.
	_, errOut, code = runCLI(t, bin, "draw", "--addr", s.addr, "--pool", "nope")
	if code == 0 || !strings.Contains(errOut, "NOT_FOUND") {
		t.Fatalf("draw from unknown pool: exit %d, %s", code, errOut)
	}
	s.stop()

	// Help and usage.
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"draw", "--help"}, {"admin", "set", "--help"}, {"wal", "dump", "--help"}} {
		out, errOut, code := runCLI(t, bin, args...)
		if code != 0 {
			t.Errorf("rewardpool %v: exit %d", args, code)
		}
		text := out + errOut
		if !strings.Contains(text, "usage: rewardpool") {
			t.Errorf("rewardpool %v: no usage:\n%s", args, text)
		}
		if args[0] == "serve" && !strings.Contains(text, "-config") {
			t.Errorf("serve --help does not list --config:\n%s", text)
		}
	}
	if _, errOut, code := runCLI(t, bin, "nosuch"); code == 0 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %s", code, errOut)
	}
	if out, _, code := runCLI(t, bin, "version"); code != 0 || !strings.Contains(out, "rewardpool") {
		t.Errorf("version: exit %d, %q", code, out)
	}

	// A bad config stops serve before it listens, naming the file and line.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\npools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, bin, "serve", "--config", bad, "--data-dir", filepath.Join(dir, "baddata"))
	if code == 0 || !strings.Contains(errOut, "bad.yaml:5:") || !strings.Contains(errOut, "weight") {
		t.Errorf("serve with a bad config: exit %d, stderr %q; want non-zero naming bad.yaml:5 and the weight", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "baddata")); err == nil {
		t.Errorf("serve with a bad config created its data directory")
	}
}

// recordAcks adds acknowledged draws to acked (item "FAILED" for an
// empty-pool draw), failing on an id acknowledged twice. The caller holds
// the lock guarding acked.
func recordAcks(t *testing.T, acked map[uint64]string, draws []e2eDraw) {
	for _, d := range draws {
		item := d.ItemID
		if d.Error != "" {
			item = "FAILED"
		}
		if prev, dup := acked[d.RequestID]; dup {
			t.Errorf("request id %d acknowledged twice (%s, %s)", d.RequestID, prev, item)
		}
		acked[d.RequestID] = item
	}
}
