package server

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/internal/replica"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/stream"
	"github.com/rewardpool/rewardpool/wal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// snapshotChunk bounds the data of one SnapshotChunk.
const snapshotChunk = 1 << 20

// openNode opens a pool's engine with a streamer hanging off its Committed
// hook, so StreamWAL (and cascading replicas) can follow it.
func (s *Server) openNode(p config.Pool) (*poolNode, error) {
	dir := filepath.Join(s.cfg.DataDir, p.Name)
	o := s.cfg.EngineOptions(p)
	o.Logger = s.log.With("pool", p.Name)
	if s.journal != nil {
		// Under durability "always" batches commit through the journal;
		// under the others it still replays what an earlier run left.
		o.Journal, o.JournalName = s.journal, p.Name
	}
	o.Observer = s.metrics.observer(p.Name)
	if s.cfg.ReplicaOf != "" {
		o.Replica = true
		o.Items = nil
	}
	if s.engineHook != nil {
		s.engineHook(p.Name, &o)
	}
	var eng *rewardpool.Engine // set before Start, which is before any Scan
	st := stream.New(stream.SourceFunc(func(from uint64, fn func(*wal.Record) error) error {
		return eng.ScanLog(from, fn)
	}), stream.Options{Logger: s.log.With("pool", p.Name, "component", "stream")})
	o.Committed = st.Committed
	e, err := rewardpool.Open(dir, o)
	if err != nil {
		st.Close()
		return nil, err
	}
	eng = e
	st.Start(e.LastSeq())
	if s.cfg.Replication.LogRecords {
		if err := st.AddSink("log", stream.NewLogSink(s.log.With("pool", p.Name)), 0); err != nil {
			st.Close()
			e.Close()
			return nil, err
		}
	}
	return &poolNode{eng: e, st: st}, nil
}

// close closes the streamer, then the engine.
func (n *poolNode) close() error {
	n.st.Close()
	return n.eng.Close()
}

// role is "primary" or "replica".
func (s *Server) role() string {
	if s.primaryAddr.Load() != nil {
		return "replica"
	}
	return "primary"
}

// replicaErr is the error a write gets on a replica, naming the primary.
func (s *Server) replicaErr() error {
	p := s.primaryAddr.Load()
	if p == nil {
		return s.fenceErr()
	}
	return errorf(codes.FailedPrecondition, rewardpool.ErrReplica,
		"this node is a read-only replica of %s: send draws and admin changes to the primary", *p)
}

// replicaID is how this node names itself in acks to its primary.
func (s *Server) replicaID() string {
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.cfg.Listen
}

// startReplica builds the follower and returns the primary's pools. If the
// primary cannot be reached, the pools already in the data directory are
// used, so a replica restarts while its primary is down.
func (s *Server) startReplica() ([]string, error) {
	var tlsCfg *tls.Config
	if ca := s.cfg.Replication.CAFile; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("server: replication.ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: replication.ca_file %s: no PEM certificate", ca)
		}
		tlsCfg = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	}
	f, err := replica.New(replica.Config{
		Primary:     s.cfg.ReplicaOf,
		TLS:         tlsCfg,
		Token:       s.replicaToken(),
		ID:          s.replicaID(),
		NodeID:      s.nodeID,
		Host:        replicaHost{s},
		Logger:      s.log.With("component", "replica"),
		BaseBackoff: s.replicaBackoff,
	})
	if err != nil {
		return nil, err
	}
	var names []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		names, err = f.ListPools(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
		s.log.Error("rewardpool: the primary refused this replica's token (authentication failed); set replication.token "+
			"to the same value on both nodes, or, without replication.token, give the replica the primary's admin_token",
			"primary", s.cfg.ReplicaOf, "err", err)
	}
	if err != nil {
		names = existingPools(s.cfg.DataDir)
		if len(names) == 0 {
			f.Stop()
			return nil, fmt.Errorf("server: replica of %s: %w (and no pools in %s)", s.cfg.ReplicaOf, err, s.cfg.DataDir)
		}
		s.log.Warn("rewardpool: cannot list the primary's pools; following the pools already in the data directory",
			"primary", s.cfg.ReplicaOf, "pools", names, "err", err)
	}
	s.follower.Store(f)
	return names, nil
}

// replicaToken is what a replica sends its primary: replication.token, or
// else its admin token, which a primary without replication.token requires
// on StreamWAL (so a replica started with the primary's own config syncs).
func (s *Server) replicaToken() string {
	if s.cfg.Replication.Token != "" {
		return s.cfg.Replication.Token
	}
	return s.cfg.AdminToken
}

// replicaHost gives the follower the server's engines.
type replicaHost struct{ s *Server }

func (h replicaHost) Engine(name string) (*rewardpool.Engine, error) {
	p := h.s.pools.Load()
	if p == nil {
		return nil, ErrNotReady
	}
	return p.get(name)
}

func (h replicaHost) Reinstall(name string, install func(dir string) error) error {
	p := h.s.pools.Load()
	if p == nil {
		return ErrNotReady
	}
	ent, err := p.entry(name)
	if err != nil {
		return err
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if !h.s.ready.Load() {
		return ErrNotReady // shutting down: leave the engine to Shutdown
	}
	if err := ent.node.Load().close(); err != nil {
		h.s.log.Warn("rewardpool: close pool before bootstrap", "pool", name, "err", err)
	}
	if j := h.s.journal; j != nil {
		// The directory is about to be replaced: what the journal holds
		// for the old log must never be replayed onto the new one.
		if err := j.Forget(name); err != nil {
			return fmt.Errorf("server: pool %q: %w", name, err)
		}
	}
	ierr := install(filepath.Join(h.s.cfg.DataDir, name))
	n, err := h.s.openNode(config.Pool{Name: name})
	if err != nil {
		return errors.Join(ierr, fmt.Errorf("server: reopen pool %q: %w", name, err))
	}
	ent.node.Store(n)
	return ierr
}

// replicationService implements rewardpool.v1.Replication.
type replicationService struct {
	rpv1.UnimplementedReplicationServer
	s *Server
}

var sinkIDs atomic.Uint64

// grpcSink sends records on a StreamWAL stream from the streamer's sink
// goroutine; the handler waits for it to stop.
type grpcSink struct {
	stream grpc.ServerStreamingServer[rpv1.WALRecord]
	done   chan struct{}
}

func (g *grpcSink) Stream(recs []wal.Record) error {
	for i := range recs {
		if err := g.stream.Send(replica.ToProto(&recs[i])); err != nil {
			return err
		}
	}
	return nil
}

func (g *grpcSink) Close() error { close(g.done); return nil }

func (r *replicationService) StreamWAL(req *rpv1.StreamWALRequest, ss grpc.ServerStreamingServer[rpv1.WALRecord]) error {
	s := r.s
	if req.GetPool() == "" {
		return toStatus(errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, "pool: must not be empty"))
	}
	p := s.pools.Load()
	if p == nil || !s.ready.Load() {
		return toStatus(errorf(codes.Unavailable, ErrNotReady, "server is not ready (recovering or shutting down)"))
	}
	ent, err := p.entry(req.GetPool())
	if err != nil {
		return toStatus(err)
	}
	// Every answer names this node, so the follower knows whom it follows.
	ss.SetTrailer(metadata.Pairs(replica.NodeIDKey, s.nodeID))
	if err := s.checkCycle(ss.Context(), req.GetPool()); err != nil {
		return err
	}
	node := ent.node.Load()
	from := max(req.GetFromSeq(), 1)
	last := node.eng.LastSeq()
	s.fenceIfSuperseded(req.GetPool(), node.eng.Epoch(), req.GetLastEpoch())
	if err := checkContinuity(ss, node, req.GetPool(), from, req.GetLastEpoch()); err != nil {
		return err
	}
	if from > last+1 {
		return status.Errorf(codes.OutOfRange, "from_seq %d is beyond this node's next seq %d (the logs diverged?)", from, last+1)
	}
	if from <= last {
		// Is the first record still on disk? Ask before sending anything.
		// A log that is empty or starts after from (set aside when this
		// node recovered from a snapshot the log no longer reached) is a
		// gap too: the requester bootstraps from our snapshot.
		if first := node.eng.FirstLogSeq(); first == 0 || from < first {
			return gapStatus(req.GetPool(), from)
		}
		err := node.eng.ScanLog(from, func(*wal.Record) error { return errStopProbe })
		if errors.Is(err, wal.ErrGap) {
			return gapStatus(req.GetPool(), from)
		}
		if err != nil && !errors.Is(err, errStopProbe) {
			return status.Errorf(codes.Unavailable, "read log of pool %q: %v", req.GetPool(), err)
		}
	}
	// Name this node, and announce how far its log is committed, so the
	// requester knows when it has caught up even if nothing new is written.
	if err := ss.SendHeader(metadata.Pairs(replica.NodeIDKey, s.nodeID,
		replica.PrimarySeqKey, strconv.FormatUint(node.eng.DurableSeq(), 10))); err != nil {
		return err
	}
	sink := &grpcSink{stream: ss, done: make(chan struct{})}
	name := "grpc-" + strconv.FormatUint(sinkIDs.Add(1), 10)
	if err := node.st.AddSink(name, sink, from); err != nil {
		return status.Errorf(codes.Unavailable, "pool %q: %v", req.GetPool(), err)
	}
	// The two nodes may have started following each other at the same
	// moment, before either knew the other's identity: look again now and
	// then, and end the stream once this node learns that it follows the
	// requester.
	var cycleErr error
	recheck := time.NewTicker(cycleRecheck)
	defer recheck.Stop()
wait:
	for {
		select {
		case <-ss.Context().Done():
			break wait
		case <-sink.done:
			break wait
		case <-recheck.C:
			if cycleErr = s.checkCycle(ss.Context(), req.GetPool()); cycleErr != nil {
				break wait
			}
		}
	}
	var sinkErr error
	for _, st := range node.st.Stats().Sinks {
		if st.Name == name {
			sinkErr = st.Err
		}
	}
	node.st.RemoveSink(name)
	switch {
	case cycleErr != nil:
		return cycleErr
	case ss.Context().Err() != nil:
		return status.FromContextError(ss.Context().Err()).Err()
	case errors.Is(sinkErr, wal.ErrGap):
		return gapStatus(req.GetPool(), from)
	case sinkErr != nil:
		return status.Errorf(codes.Unavailable, "pool %q: stream stopped: %v", req.GetPool(), sinkErr)
	}
	return status.Errorf(codes.Unavailable, "pool %q: stream closed (engine closing or reopened); reconnect", req.GetPool())
}

var errStopProbe = errors.New("probe done")

// cycleRecheck is how often an open StreamWAL checks again whether its
// requester has become this node's upstream.
const cycleRecheck = 500 * time.Millisecond

// newNodeID is a random process identity.
func newNodeID() string {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("server: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// checkCycle refuses a requester that is this node's own upstream: two
// nodes following each other would each wait for the other forever, and a
// node restarted as a replica of its own replica would take that replica's
// shorter log for the truth.
func (s *Server) checkCycle(ctx context.Context, pool string) error {
	var requester string
	if v := metadata.ValueFromIncomingContext(ctx, replica.NodeIDKey); len(v) == 1 {
		requester = v[0]
	}
	if requester == "" {
		return nil
	}
	if requester == s.nodeID {
		return status.Errorf(codes.FailedPrecondition, "pool %q: a node cannot follow itself (check replica_of)", pool)
	}
	if f := s.follower.Load(); f != nil && f.UpstreamID() == requester {
		return status.Errorf(codes.FailedPrecondition, "pool %q: cycle: this node (a replica of %s) follows the requester, "+
			"so the requester cannot follow it; two nodes never follow each other. Promote the one that holds the longer log, "+
			"or point both at the primary", pool, f.Primary())
	}
	return nil
}

// checkContinuity refuses to stream to a node whose log differs from this
// one at from-1, judged by (epoch, seq): epochs are unique across nodes,
// so the same epoch at the same seq is the same record, and the same
// history up to it. Records streamed on top of a divergent tail would
// apply cleanly and silently build a different state.
//
// A requester whose log merely runs past ours in our own epoch is ahead of
// us: it gets FAILED_PRECONDITION and must not cut anything. Any other
// difference gets ABORTED with our epoch history in a trailer
// (replica.HistoryKey): the requester compares it with its own log and
// cuts its tail only if our history is a newer epoch that parted from its
// log at a known seq (replica.Judge). Where our record at from-1 is no
// longer on disk, the check falls back to the epochs: only a requester in
// our epoch or an older generation is ours to feed (from our snapshot); one
// in a newer epoch, or another epoch of our generation (a split brain), is
// not.
func checkContinuity(ss grpc.ServerStream, node *poolNode, pool string, from, lastEpoch uint64) error {
	if from <= 1 || lastEpoch == 0 {
		return nil
	}
	e := node.eng
	prev, last := from-1, e.LastSeq()
	if prev <= last {
		if first := e.FirstLogSeq(); first == 0 || prev < first {
			if prev == last && lastEpoch == e.Epoch() {
				return nil
			}
			// Only an older generation (or, before unique epochs, a
			// smaller counter) can be history ours replaced: two epochs
			// of one generation are the two sides of a split brain,
			// ordered as numbers by their random tags alone, and a
			// snapshot would silently replace the requester's side.
			if g := rewardpool.EpochGeneration(lastEpoch); lastEpoch == e.Epoch() ||
				(lastEpoch < e.Epoch() && (g == 0 || g < rewardpool.EpochGeneration(e.Epoch()))) {
				return nil // the stream asks for a snapshot (a gap)
			}
		} else {
			var epoch uint64
			err := e.ScanLog(prev, func(r *wal.Record) error { epoch = r.Epoch; return errStopProbe })
			if err != nil && !errors.Is(err, errStopProbe) && !errors.Is(err, wal.ErrGap) {
				return status.Errorf(codes.Unavailable, "read log of pool %q: %v", pool, err)
			}
			if epoch == lastEpoch || errors.Is(err, wal.ErrGap) {
				return nil
			}
		}
	}
	if prev > last && lastEpoch == e.Epoch() {
		// The same epoch: the requester holds our whole log and more.
		return status.Errorf(codes.FailedPrecondition, "pool %q: this node is behind the requester: its log ends at seq %d "+
			"(epoch %d) and the requester's at %d in the same epoch; it cannot be followed until it has caught up, "+
			"and the requester must not cut its records", pool, last, lastEpoch, prev)
	}
	h, err := node.hist.Get(e)
	if err != nil {
		return status.Errorf(codes.Unavailable, "pool %q: %v", pool, err)
	}
	ss.SetTrailer(metadata.Pairs(replica.HistoryKey, h.String()))
	return status.Errorf(codes.Aborted, "pool %q: the logs differ at seq %d: the requester's record there is from epoch %d, "+
		"this node's log (seq %d..%d) has epochs %s; the requester judges by (epoch, seq) whether this node's history is "+
		"newer (then it saves and cuts its divergent tail) or not (then it refuses to follow)",
		pool, prev, lastEpoch, h.First, h.Last, h.String())
}

func gapStatus(pool string, from uint64) error {
	return status.Errorf(codes.OutOfRange,
		"pool %q: from_seq %d is older than the oldest retained log segment: bootstrap from GetSnapshot, then StreamWAL from its seq + 1", pool, from)
}

func (r *replicationService) GetSnapshot(req *rpv1.GetSnapshotRequest, ss grpc.ServerStreamingServer[rpv1.SnapshotChunk]) error {
	s := r.s
	if req.GetPool() == "" {
		return toStatus(errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, "pool: must not be empty"))
	}
	if _, err := s.pool(req.GetPool()); err != nil {
		return toStatus(err)
	}
	dir := filepath.Join(s.cfg.DataDir, req.GetPool(), "snapshots")
	// The newest file may be pruned between List and Open: try again.
	for attempt := 0; ; attempt++ {
		infos, err := snapshot.List(dir)
		if err != nil {
			return status.Errorf(codes.Unavailable, "list snapshots: %v", err)
		}
		if len(infos) == 0 {
			return status.Errorf(codes.FailedPrecondition, "pool %q: no snapshot yet; retry", req.GetPool())
		}
		newest := infos[len(infos)-1]
		f, err := os.Open(filepath.Join(dir, newest.Name))
		if errors.Is(err, os.ErrNotExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return status.Errorf(codes.Unavailable, "open snapshot: %v", err)
		}
		defer f.Close()
		buf := make([]byte, snapshotChunk)
		for {
			n, rerr := io.ReadFull(f, buf)
			last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
			if rerr != nil && !last {
				return status.Errorf(codes.Unavailable, "read snapshot: %v", rerr)
			}
			if err := ss.Send(&rpv1.SnapshotChunk{Data: buf[:n], Seq: newest.Seq, Last: last}); err != nil {
				return err
			}
			if last {
				return nil
			}
		}
	}
}

func (r *replicationService) Promote(ctx context.Context, req *rpv1.PromoteRequest) (*rpv1.PromoteResponse, error) {
	epoch, pools, err := r.s.promote(ctx, req.GetForce())
	if err != nil {
		return nil, toStatus(err)
	}
	return &rpv1.PromoteResponse{Epoch: epoch, Pools: pools}, nil
}

// replicationView is GET /v1/replication.
type replicationView struct {
	Role    string            `json:"role"`
	Primary string            `json:"primary"`
	Pools   []replicationPool `json:"pools"`
}

type replicationPool struct {
	Name       string  `json:"name"`
	AppliedSeq uint64  `json:"applied_seq"`
	PrimarySeq uint64  `json:"primary_seq,omitempty"`
	Connected  bool    `json:"connected"`
	LagRecords uint64  `json:"lag_records"`
	LagSeconds float64 `json:"lag_seconds"`
	Diverged   bool    `json:"diverged,omitempty"` // the primary refused this pool: its log parted from the primary's
	Refused    string  `json:"refused,omitempty"`  // why the upstream last refused to stream this pool
	// Replicas: caught up with the primary at least once since start, when
	// the primary last sent anything, and why the stream last ended.
	Synced    bool   `json:"synced,omitempty"`
	LastHeard string `json:"last_heard,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

func (s *Server) replicationStatus() replicationView {
	v := replicationView{Role: s.role(), Pools: []replicationPool{}}
	if p := s.primaryAddr.Load(); p != nil {
		v.Primary = *p
	}
	if f := s.follower.Load(); f != nil && v.Role == "replica" {
		for _, st := range f.Status() {
			rp := replicationPool{Name: st.Name, AppliedSeq: st.AppliedSeq,
				PrimarySeq: st.PrimarySeq, Connected: st.Connected, LagRecords: st.Lag, LagSeconds: st.LagSeconds, Diverged: st.Diverged,
				Refused: st.Refused, Synced: st.Synced, LastError: st.LastError}
			if !st.LastHeard.IsZero() {
				rp.LastHeard = st.LastHeard.UTC().Format(time.RFC3339Nano)
			}
			v.Pools = append(v.Pools, rp)
		}
		return v
	}
	if p := s.pools.Load(); p != nil {
		for _, name := range p.names {
			seq := p.engine(name).LastSeq()
			v.Pools = append(v.Pools, replicationPool{Name: name, AppliedSeq: seq, PrimarySeq: seq, Connected: true})
		}
	}
	return v
}

func (s *Server) handleReplication(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(s.replicationStatus())
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Force bool `json:"force"`
	}
	if b, err := io.ReadAll(r.Body); err != nil {
		s.writeError(w, err)
		return
	} else if len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.writeError(w, errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, "promote body: %v (want {\"force\": true} or nothing)", err))
			return
		}
	}
	epoch, pools, err := s.promote(r.Context(), req.Force)
	if err != nil {
		s.writeError(w, err)
		return
	}
	b, err := json.Marshal(struct {
		Epoch uint64   `json:"epoch"`
		Pools []string `json:"pools"`
	}{epoch, append([]string{}, pools...)})
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// replicationCollector exports the follower's state.
type replicationCollector struct{ s *Server }

var (
	replAppliedDesc = prometheus.NewDesc("rewardpool_replication_applied_seq",
		"Last log seq this replica applied.", []string{"pool"}, nil)
	replLagDesc = prometheus.NewDesc("rewardpool_replication_lag_records",
		"Records the primary has sent or announced that this replica has not applied yet.", []string{"pool"}, nil)
	replLagSecDesc = prometheus.NewDesc("rewardpool_replication_lag_seconds",
		"How long this replica has not been caught up: since the oldest received record not yet applied arrived, or since its stream dropped.",
		[]string{"pool"}, nil)
	replConnDesc = prometheus.NewDesc("rewardpool_replication_connected",
		"1 while this replica's stream from the primary is open.", []string{"pool"}, nil)
)

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- replAppliedDesc
	ch <- replLagDesc
	ch <- replLagSecDesc
	ch <- replConnDesc
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.s.follower.Load()
	if f == nil || c.s.pools.Load() == nil {
		return
	}
	for _, st := range f.Status() {
		conn := 0.0
		if st.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(replAppliedDesc, prometheus.GaugeValue, float64(st.AppliedSeq), st.Name)
		ch <- prometheus.MustNewConstMetric(replLagDesc, prometheus.GaugeValue, float64(st.Lag), st.Name)
		ch <- prometheus.MustNewConstMetric(replLagSecDesc, prometheus.GaugeValue, st.LagSeconds, st.Name)
		ch <- prometheus.MustNewConstMetric(replConnDesc, prometheus.GaugeValue, conn, st.Name)
	}
}
