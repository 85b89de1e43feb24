// Package server serves rewardpool engines over gRPC and HTTP/JSON on one
// port, with Prometheus metrics, health checks and bearer-token auth.
//
// Both transports call the same service layer (service.go), so a draw means
// the same thing and fails with the same code whichever way it arrives.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/internal/replica"
	"github.com/rewardpool/rewardpool/journal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Server is one rewardpool node: its pools and the listener serving them.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	version string
	auth    *authorizer
	metrics *metrics

	pools atomic.Pointer[pools] // nil until recovery has finished
	// journal is the node's commit journal (group_commit: node), opened by
	// Recover before any pool and closed after every pool.
	journal *journal.Journal
	ready   atomic.Bool

	health *health.Server
	grpc   *grpc.Server
	http   *http.Server
	ln     net.Listener
	limit  *limitListener // caps open connections (connections.max)
	mux    *connMux
	wg     sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error

	// engineHook, when set, adjusts each pool's engine options just before
	// Recover opens it. A test seam (fault injection through internal/failpoint).
	engineHook func(pool string, o *rewardpool.Options)
	// syncTimeout bounds the wait for min_sync_replicas in nanoseconds;
	// 0 means defaultSyncTimeout. Atomic so tests can shorten it.
	syncTimeout atomic.Int64

	// Replication: follower is set while this node follows a primary.
	follower    atomic.Pointer[replica.Follower]
	primaryAddr atomic.Pointer[string] // nil: this node is a primary
	// nodeID names this process to the nodes it follows and that follow
	// it (random per start), so a cycle of followers is refused.
	nodeID string
	// replicaBackoff, when set, is the follower's base reconnect delay.
	// A test seam.
	replicaBackoff time.Duration

	// fence, once set, is why this node refuses writes: a newer epoch
	// exists elsewhere (see fenceIfSuperseded). promoteMu serializes
	// promotions.
	fence     atomic.Pointer[string]
	promoteMu sync.Mutex
}

// New builds a server for cfg. Nothing listens or opens until Listen and
// Recover.
func New(cfg *config.Config, log *slog.Logger, version string) *Server {
	s := &Server{
		cfg:     cfg,
		log:     log,
		version: version,
		auth:    newAuthorizer(cfg.AdminToken, cfg.ClientToken, cfg.Replication.Token),
		metrics: newMetrics(version, cfg.Metrics.PerItemMaxItems),
		health:  health.NewServer(),
		nodeID:  newNodeID(),
	}
	s.metrics.pools = s.pools.Load
	s.metrics.reg.MustRegister(newPoolCollector(s.pools.Load, s.metrics))
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rewardpool_connections_open",
		Help: "Client connections open (HTTP, gRPC, replication); at most connections.max.",
	}, func() float64 {
		// Scrapes arrive over a connection, so Listen has set s.limit.
		if s.limit == nil {
			return 0
		}
		return float64(s.openConns())
	}))
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.MaxRecvMsgSize(int(cfg.Limits.MaxBodyBytes)),
		grpc.ForceServerCodecV2(newRequestCodec()),
		// grpc-go waits 120s by default for a new connection's preface and
		// settings, and keeps a connection without calls forever.
		grpc.ConnectionTimeout(time.Duration(cfg.Connections.HandshakeTimeout)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: time.Duration(cfg.Connections.IdleTimeout)}),
		grpc.InTapHandle(unaryDeadline(time.Duration(cfg.Connections.BodyTimeout))),
	)
	rpv1.RegisterRewardPoolServer(s.grpc, &grpcService{s: s})
	rpv1.RegisterReplicationServer(s.grpc, &replicationService{s: s})
	s.metrics.reg.MustRegister(&replicationCollector{s: s})
	if cfg.ReplicaOf != "" {
		addr := cfg.ReplicaOf
		s.primaryAddr.Store(&addr)
	}
	healthpb.RegisterHealthServer(s.grpc, healthGate{Server: s.health, s: s})
	reflection.Register(s.grpc)
	s.http = &http.Server{
		Handler: s.routes(),
		// The body has its own deadline, set by guard once the headers are
		// in (connections.body_timeout); ReadTimeout would cover both.
		ReadHeaderTimeout: time.Duration(cfg.Connections.HeaderTimeout),
		IdleTimeout:       time.Duration(cfg.Connections.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Listen opens the configured address and starts serving. Until Recover
// finishes, /healthz answers, /readyz and the API answer 503.
func (s *Server) Listen() error {
	raw, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Listen, err)
	}
	s.limit = newLimitListener(raw, s.cfg.Connections.Max)
	ln := net.Listener(s.limit)
	s.ln = ln
	if s.cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("server: load TLS certificate: %w", err)
		}
		// With TLS, ALPN negotiates h2 for gRPC and HTTP/JSON clients alike,
		// so one net/http server takes both and hands gRPC on by content type.
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"}}
		inner := s.http.Handler
		s.http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				s.grpc.ServeHTTP(w, r)
				return
			}
			inner.ServeHTTP(w, r)
		})
		s.goServe("https", func() error { return s.http.Serve(tls.NewListener(ln, s.http.TLSConfig)) })
	} else {
		// h2c JSON clients (curl --http2-prior-knowledge) reach the HTTP
		// server too: the mux routes h2c connections by content type.
		s.http.Protocols = new(http.Protocols)
		s.http.Protocols.SetHTTP1(true)
		s.http.Protocols.SetUnencryptedHTTP2(true)
		s.mux = newConnMux(ln, time.Duration(s.cfg.Connections.HandshakeTimeout))
		s.goServe("grpc", func() error { return s.grpc.Serve(s.mux.grpc) })
		s.goServe("http", func() error { return s.http.Serve(s.mux.http1) })
		s.goServe("mux", func() error { s.mux.serve(); return nil })
	}
	s.log.Info("rewardpool: listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS.CertFile != "",
		"version", s.version)
	return nil
}

func (s *Server) goServe(name string, serve func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) &&
			!errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("rewardpool: server stopped", "server", name, "err", err)
		}
	}()
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// openConns is how many client connections are open.
func (s *Server) openConns() int64 { return s.limit.open.Load() }

// Recover opens every configured pool (snapshot + log replay), then marks
// the server ready. A pool that fails to open stops the start: serving a
// node with a pool missing would answer NOT_FOUND for it, which clients
// would take for a configuration fact.
func (s *Server) Recover() error {
	start := time.Now()
	type poolCfg struct {
		p      config.Pool
		seeded bool // the directory existed: compare config and state
	}
	var list []poolCfg
	if s.cfg.GroupCommit != "pool" {
		j, err := journal.Open(filepath.Join(s.cfg.DataDir, config.JournalDir), journal.Options{
			Logger: s.log.With("component", "journal"),
		})
		if err != nil {
			return fmt.Errorf("server: open the node journal: %w", err)
		}
		s.journal = j
	} else if segs := journal.Segments(filepath.Join(s.cfg.DataDir, config.JournalDir)); len(segs) > 0 {
		return fmt.Errorf("server: group_commit is \"pool\", but the node journal in %s holds %d segment(s) of a run that did not close cleanly: start once with group_commit: node (it replays them into the pools' logs), then switch",
			filepath.Join(s.cfg.DataDir, config.JournalDir), len(segs))
	}
	if s.cfg.ReplicaOf != "" {
		names, err := s.startReplica()
		if err != nil {
			return err
		}
		for _, n := range names {
			list = append(list, poolCfg{p: config.Pool{Name: n}})
		}
	} else {
		configured := map[string]bool{}
		for _, p := range s.cfg.Pools {
			configured[p.Name] = true
			_, statErr := os.Stat(filepath.Join(s.cfg.DataDir, p.Name, "wal"))
			list = append(list, poolCfg{p: p, seeded: statErr == nil})
		}
		// Pools already in the data directory are served too, listed or
		// not: a promoted replica restarted as a primary has no pools in
		// its config, and its pools' state is in the directory, not there.
		for _, name := range existingPools(s.cfg.DataDir) {
			if !configured[name] {
				s.log.Info("rewardpool: serving a pool found in the data directory", "pool", name)
				list = append(list, poolCfg{p: config.Pool{Name: name}})
			}
		}
	}
	ps := make([]config.Pool, len(list))
	for i, pc := range list {
		ps[i] = pc.p
	}
	opened, err := s.openNodes(ps)
	if err != nil {
		if f := s.follower.Load(); f != nil {
			f.Stop()
		}
		return err
	}
	if s.journal != nil {
		s.claimJournal()
	}
	nodes := map[string]*poolNode{}
	for i, pc := range list {
		nodes[pc.p.Name] = opened[i]
		if pc.seeded {
			s.warnIfConfigDiffers(pc.p.Name, opened[i].eng, s.cfg.EngineOptions(pc.p).Items)
		}
	}
	s.pools.Store(newPools(nodes))
	s.ready.Store(true)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(rpv1.RewardPool_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	if f := s.follower.Load(); f != nil {
		names := make([]string, 0, len(list))
		for _, pc := range list {
			names = append(names, pc.p.Name)
		}
		f.Start(names)
	}
	s.log.Info("rewardpool: ready", "pools", len(nodes), "role", s.role(), "took", time.Since(start))
	// Start-up (parsing the config, seeding or recovering every catalog)
	// is when the heap is biggest, and the garbage collector lets the heap
	// grow to twice what was live at its last cycle: left alone, a node
	// with a 1M-item catalog would grow to twice its start-up heap while
	// serving. One collection now sets that bound from what serving keeps.
	go debug.FreeOSMemory()
	return nil
}

// claimJournal deals with journal batches of pools this run did not open:
// a pool whose directory is gone is forgotten (its batches could only hold
// the journal's old segments forever); one whose directory exists is kept
// for a later run and named in a warning.
func (s *Server) claimJournal() {
	for _, name := range s.journal.Unclaimed() {
		dir := filepath.Join(s.cfg.DataDir, name)
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			s.log.Warn("rewardpool: the journal holds batches of a pool whose directory is gone; forgetting them", "pool", name)
			if err := s.journal.Forget(name); err != nil {
				s.log.Warn("rewardpool: forget a gone pool in the journal", "pool", name, "err", err)
			}
			continue
		}
		s.log.Warn("rewardpool: the journal holds batches of a pool this run does not serve; they wait for it (its old journal segments stay)", "pool", name)
	}
}

// startupOpeners bounds how many pools Recover opens at once. Opening a
// pool is mostly waiting for fsyncs (a new one makes five or so), and the
// file system's journal commits overlapping fsyncs together, so opening a
// few dozen at a time starts hundreds of pools several times faster than
// one by one, while the file descriptors and memory in use at once stay
// bounded.
const startupOpeners = 64

// errNotOpened marks the pools openNodes skipped after another failed.
var errNotOpened = errors.New("not opened: another pool failed")

// openNodes opens the pools ps, startupOpeners at a time, and returns their
// nodes in the same order. If any fails, it starts no more, closes those
// it opened and returns the first failure in ps order, naming the pool.
func (s *Server) openNodes(ps []config.Pool) ([]*poolNode, error) {
	nodes := make([]*poolNode, len(ps))
	errs := make([]error, len(ps))
	var failed atomic.Bool
	var wg sync.WaitGroup
	slots := make(chan struct{}, startupOpeners)
	for i, p := range ps {
		slots <- struct{}{}
		if failed.Load() {
			<-slots
			errs[i] = errNotOpened
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			nodes[i], errs[i] = s.openNode(p)
			if errs[i] != nil {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	if !failed.Load() {
		return nodes, nil
	}
	var first error
	for i, err := range errs {
		if first == nil && err != nil && !errors.Is(err, errNotOpened) {
			first = fmt.Errorf("server: open pool %q: %w", ps[i].Name, err)
		}
		if nodes[i] != nil {
			nodes[i].close()
		}
	}
	return nil, first
}

// warnIfConfigDiffers tells the operator when the config's catalog no
// longer matches the pool's state: the state wins (it holds every draw and
// admin change since), and the config only seeds new pools.
func (s *Server) warnIfConfigDiffers(name string, e *rewardpool.Engine, items []rewardpool.Item) {
	st, err := e.State(context.Background())
	if err != nil {
		return
	}
	if sameCatalog(st.Items, items) {
		return
	}
	cur := make(map[string]rewardpool.Item, len(st.Items))
	for _, it := range st.Items {
		cur[it.ID] = it
	}
	var diffs []string
	for _, it := range items {
		c, ok := cur[it.ID]
		switch {
		case !ok:
			diffs = append(diffs, it.ID+": in config, not in state")
		case c.Weight != it.Weight:
			diffs = append(diffs, it.ID+": weight differs")
		}
		delete(cur, it.ID)
	}
	for id := range cur {
		diffs = append(diffs, id+": in state, not in config")
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		s.log.Warn("rewardpool: config and stored state differ; the stored state is used, change it through the admin API",
			"pool", name, "differences", strings.Join(diffs, "; "))
	}
}

// sameCatalog reports whether state and config list the same ids in the
// same order with the same weights: the usual case, checked without
// building an index of a catalog that may hold a million items.
func sameCatalog(state, config []rewardpool.Item) bool {
	if len(state) != len(config) {
		return false
	}
	for i := range state {
		if state[i].ID != config[i].ID || state[i].Weight != config[i].Weight {
			return false
		}
	}
	return true
}

// Shutdown stops accepting, lets in-flight requests finish (until ctx
// expires, then cuts them), and closes every engine: each fsyncs its log
// and writes a final snapshot.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	start := time.Now()
	s.ready.Store(false)
	s.health.Shutdown()
	if s.mux != nil {
		s.mux.Close()
	}
	httpErr := s.http.Shutdown(ctx)
	// StreamWAL streams never end on their own: close the streamers so
	// they return and GracefulStop does not wait for the deadline.
	// A subscriber that stopped reading leaves its sink blocked in Send
	// under flow control, and closing the streamer waits for that sink: if
	// the deadline passes first, cut every gRPC connection, which fails
	// the Send.
	streamsClosed := make(chan struct{})
	go func() {
		if p := s.pools.Load(); p != nil {
			for _, name := range p.names {
				p.entries[name].node.Load().st.Close()
			}
		}
		close(streamsClosed)
	}()
	select {
	case <-streamsClosed:
	case <-ctx.Done():
		s.log.Warn("rewardpool: shutdown deadline passed with replication streams still open; cutting connections")
		s.grpc.Stop()
		<-streamsClosed
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop() // in-flight streams past the deadline are cut
		<-stopped
	}
	if s.ln != nil {
		s.ln.Close()
	}
	s.wg.Wait()
	var errs []error
	if httpErr != nil && !errors.Is(httpErr, context.DeadlineExceeded) {
		errs = append(errs, httpErr)
	}
	if f := s.follower.Load(); f != nil {
		f.Stop()
	}
	if p := s.pools.Load(); p != nil {
		for _, name := range p.names {
			ent := p.entries[name]
			ent.mu.Lock()
			err := ent.node.Load().close()
			ent.mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("close pool %q: %w", name, err))
			}
		}
	}
	if s.journal != nil {
		if err := s.journal.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the node journal: %w", err))
		}
	}
	s.log.Info("rewardpool: stopped", "took", time.Since(start))
	return errors.Join(errs...)
}

// pool returns the engine for name, or the error to answer with.
func (s *Server) pool(name string) (*rewardpool.Engine, error) {
	p := s.pools.Load()
	if p == nil || !s.ready.Load() {
		return nil, errorf(codes.Unavailable, ErrNotReady, "server is not ready (recovering or shutting down)")
	}
	return p.get(name)
}

// existingPools lists the pool directories (those with a log) in dataDir.
func existingPools(dataDir string) []string {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dataDir, e.Name(), "wal")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	return names
}
