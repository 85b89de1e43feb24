// Package replica is the replica side of replication (issue 4): a Follower
// tails each pool's committed log from a primary's Replication service and
// applies it to the local engines, bootstrapping from a snapshot when the
// primary no longer has the records it needs.
package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Host gives the follower the local engines. The server implements it.
type Host interface {
	// Engine returns the pool's current engine.
	Engine(pool string) (*rewardpool.Engine, error)
	// Reinstall closes the pool's engine, calls install with the pool's
	// directory while no engine has it open, and reopens it as a replica.
	Reinstall(pool string, install func(dir string) error) error
}

// Config configures a Follower.
type Config struct {
	Primary string      // host:port of the primary
	TLS     *tls.Config // nil: plaintext (h2c)
	Token   string      // sent as "authorization: Bearer <token>" when set
	// ID names this replica to the primary in acks (the address it
	// listens on). Empty: no acks, so the primary's min_sync_replicas
	// never counts this replica.
	ID string
	// NodeID is this node's identity (random, per process), sent with
	// every call so an upstream can refuse a cycle: a node that follows
	// this node cannot also be followed by it.
	NodeID string
	Host   Host
	Logger *slog.Logger
	// BaseBackoff is the first reconnect delay (default 50ms); it doubles
	// after each failed attempt up to MaxBackoff (default 2s).
	BaseBackoff, MaxBackoff time.Duration
	// MaxApply bounds the records of one Apply call (default 8192); a call
	// always ends at a commit record, so one batch may exceed it.
	MaxApply int
	// ProbeInterval is how often the follower asks the primary's health
	// service whether it answers at all (default 1s), and ProbeTimeout how
	// long it waits (default 2s). A stream from an idle primary carries
	// nothing, so without the probe a primary lost behind a path that drops
	// packets silently would look connected until TCP gives up.
	ProbeInterval, ProbeTimeout time.Duration
}

// PoolStatus is what GET /v1/replication and the metrics show for a pool.
type PoolStatus struct {
	Name       string
	AppliedSeq uint64 // local engine's last seq
	PrimarySeq uint64 // highest seq received from the primary (0: unknown)
	Connected  bool
	Lag        uint64 // PrimarySeq - AppliedSeq when known
	Bootstraps uint64
	Diverged   bool // the primary refused this pool: its log has parted from the primary's
	// Refused is why the upstream last refused to stream this pool (it is
	// behind this node, they would follow each other, or the logs parted
	// in a way that cutting cannot fix); "" once a stream is open.
	Refused string
	// LagSeconds is how long the pool has not been caught up: since the
	// oldest received record not yet applied arrived, or since the stream
	// from the primary dropped. 0 while caught up.
	LagSeconds float64
	// Synced: since this follower started, the pool has caught up with
	// the primary at least once (applied every record the primary had when
	// the stream opened).
	Synced bool
	// HeardSeq is the last seq the primary is known to have committed: the
	// end of the last whole batch received, or what it announced when the
	// stream opened. A promotion below it would lose those records.
	HeardSeq uint64
	// LastHeard is when the primary last sent anything (zero: never).
	LastHeard time.Time
	// LastError is why the last stream ended, while it is not open again.
	LastError string
}

type poolState struct {
	name       string
	primarySeq atomic.Uint64
	connected  atomic.Bool
	diverged   atomic.Bool // the primary refused us: our log has parted from its
	refused    atomic.Pointer[string]
	hist       HistoryCache // our log's epochs, read again only where it grew
	// behindSince is when (unix ns) this pool last stopped being caught up:
	// a record arrived that is not applied yet, or the stream dropped.
	// 0 while caught up.
	behindSince atomic.Int64
	bootstraps  atomic.Uint64
	synced      atomic.Bool
	heardSeq    atomic.Uint64
	lastHeard   atomic.Int64 // unix ns
	lastErr     atomic.Pointer[string]
}

// heard notes that the primary has committed up to seq.
func (ps *poolState) heard(seq uint64) {
	for {
		cur := ps.heardSeq.Load()
		if seq <= cur || ps.heardSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Follower follows a primary for a set of pools.
type Follower struct {
	cfg    Config
	log    *slog.Logger
	conn   *grpc.ClientConn
	repl   rpv1.ReplicationClient
	rp     rpv1.RewardPoolClient
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	pools   []*poolState
	probing bool

	upstreamID atomic.Pointer[string] // the upstream's node identity, once heard

	// unansweredSince is when (unix ns) the first health probe that the
	// primary has not answered was sent; 0 while it answers.
	unansweredSince atomic.Int64
	// upstreamNotReady is set while the upstream answers its source health
	// service (SourceHealthService) with NOT_SERVING: a replica above us in a
	// cascade that lost its own primary.
	upstreamNotReady atomic.Bool
}

// New dials (lazily) the primary. Nothing is followed until Start.
func New(cfg Config) (*Follower, error) {
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.MaxApply <= 0 {
		cfg.MaxApply = 8192
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient("passthrough:///"+cfg.Primary, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)))
	if err != nil {
		return nil, fmt.Errorf("replica: connect to %s: %w", cfg.Primary, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Follower{cfg: cfg, log: cfg.Logger, conn: conn, repl: rpv1.NewReplicationClient(conn),
		rp: rpv1.NewRewardPoolClient(conn), ctx: ctx, cancel: cancel}, nil
}

// NodeIDKey is the metadata key in which a node names itself: in requests
// (the follower) and in response headers and trailers (the upstream).
const NodeIDKey = "rewardpool-node-id"

func (f *Follower) outgoing(ctx context.Context) context.Context {
	if f.cfg.NodeID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, NodeIDKey, f.cfg.NodeID)
	}
	if f.cfg.Token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.cfg.Token)
}

// heard records the upstream's identity from a response's metadata.
func (f *Follower) heard(md metadata.MD) {
	if v := md.Get(NodeIDKey); len(v) == 1 && v[0] != "" {
		if p := f.upstreamID.Load(); p == nil || *p != v[0] {
			id := v[0]
			f.upstreamID.Store(&id)
		}
	}
}

// UpstreamID is the identity of the node this follower follows, once it
// has answered ("" before).
func (f *Follower) UpstreamID() string {
	if p := f.upstreamID.Load(); p != nil {
		return *p
	}
	return ""
}

// ListPools asks the primary for its pool names.
func (f *Follower) ListPools(ctx context.Context) ([]string, error) {
	var hdr metadata.MD
	resp, err := f.rp.ListPools(f.outgoing(ctx), &rpv1.ListPoolsRequest{}, grpc.Header(&hdr))
	f.heard(hdr)
	if err != nil {
		return nil, fmt.Errorf("replica: list pools of %s: %w", f.cfg.Primary, err)
	}
	var names []string
	for _, p := range resp.GetPools() {
		names = append(names, p.GetName())
	}
	return names, nil
}

// Start follows each pool in its own goroutine.
func (f *Follower) Start(pools []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.probing {
		f.probing = true
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.probe()
		}()
	}
	for _, name := range pools {
		ps := &poolState{name: name}
		f.pools = append(f.pools, ps)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.follow(ps)
		}()
	}
}

// Stop stops following and waits; the engines stay open. Idempotent.
func (f *Follower) Stop() {
	f.once.Do(func() {
		f.cancel()
		f.wg.Wait()
		f.conn.Close()
		f.mu.Lock()
		for _, ps := range f.pools {
			ps.connected.Store(false)
		}
		f.mu.Unlock()
	})
}

// Primary is the primary's address.
func (f *Follower) Primary() string { return f.cfg.Primary }

// probe asks the primary's health service every ProbeInterval until Stop,
// tracking since when it has not answered.
func (f *Follower) probe() {
	t := time.NewTicker(f.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.ProbeTimeout)
		resp, err := healthpb.NewHealthClient(f.conn).Check(f.outgoing(ctx),
			&healthpb.HealthCheckRequest{Service: SourceHealthService})
		cancel()
		switch {
		case status.Code(err) == codes.NotFound:
			// An upstream too old to say whether it is ready: it answered.
			err = nil
			f.upstreamNotReady.Store(false)
		case err == nil: // any answer, SERVING or not, is an answer
			f.upstreamNotReady.Store(resp.GetStatus() != healthpb.HealthCheckResponse_SERVING)
		}
		if err == nil {
			f.unansweredSince.Store(0)
		} else if f.ctx.Err() == nil {
			f.unansweredSince.CompareAndSwap(0, sent.UnixNano())
		}
	}
}

// SourceHealthService is the gRPC health service name a node answers
// SERVING under only while it is ready: what its replicas ask.
const SourceHealthService = "rewardpool.v1.Replication"

// UpstreamReady reports whether the upstream, at its last answer, said it
// was ready to be followed.
func (f *Follower) UpstreamReady() bool { return !f.upstreamNotReady.Load() }

// Unanswered is how long the primary has not answered the follower's
// health probes (0 while it answers).
func (f *Follower) Unanswered() time.Duration {
	if since := f.unansweredSince.Load(); since != 0 {
		return time.Since(time.Unix(0, since))
	}
	return 0
}

// PrimaryServing asks the primary's gRPC health service whether it serves.
// An error means it could not be asked (down, unreachable, or the ctx
// expired first); false with no error means it answered NOT_SERVING. Call
// it before Stop, which closes the connection.
func (f *Follower) PrimaryServing(ctx context.Context) (bool, error) {
	resp, err := healthpb.NewHealthClient(f.conn).Check(f.outgoing(ctx), &healthpb.HealthCheckRequest{})
	if err != nil {
		return false, err
	}
	return resp.GetStatus() == healthpb.HealthCheckResponse_SERVING, nil
}

// Status reports each followed pool.
func (f *Follower) Status() []PoolStatus {
	f.mu.Lock()
	pools := append([]*poolState(nil), f.pools...)
	f.mu.Unlock()
	out := make([]PoolStatus, 0, len(pools))
	for _, ps := range pools {
		st := PoolStatus{Name: ps.name, PrimarySeq: ps.primarySeq.Load(), Connected: ps.connected.Load(),
			Bootstraps: ps.bootstraps.Load(), Diverged: ps.diverged.Load(), Synced: ps.synced.Load(),
			HeardSeq: ps.heardSeq.Load()}
		if r := ps.refused.Load(); r != nil {
			st.Refused = *r
		}
		if ns := ps.lastHeard.Load(); ns != 0 {
			st.LastHeard = time.Unix(0, ns)
		}
		if e := ps.lastErr.Load(); e != nil && !st.Connected {
			st.LastError = *e
		}
		if e, err := f.cfg.Host.Engine(ps.name); err == nil {
			st.AppliedSeq = e.LastSeq()
		}
		if st.PrimarySeq > st.AppliedSeq {
			st.Lag = st.PrimarySeq - st.AppliedSeq
		}
		if since := ps.behindSince.Load(); since != 0 {
			st.LagSeconds = time.Since(time.Unix(0, since)).Seconds()
		}
		out = append(out, st)
	}
	return out
}

// follow runs sessions until Stop, reconnecting with backoff.
func (f *Follower) follow(ps *poolState) {
	backoff := f.cfg.BaseBackoff
	for f.ctx.Err() == nil {
		progressed, err := f.session(ps)
		ps.connected.Store(false)
		ps.behindSince.CompareAndSwap(0, time.Now().UnixNano())
		if f.ctx.Err() != nil {
			return
		}
		prevErr := ps.lastErr.Load()
		if err != nil {
			msg := err.Error()
			ps.lastErr.Store(&msg)
		}
		if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
			// Retrying cannot help until an operator fixes the tokens:
			// say so plainly (once, not on every retry), and retry slowly.
			msg := fmt.Sprintf("primary %s refused this replica: authentication failed: %s; the fix: set replication.token "+
				"to the same value on both nodes, or, without replication.token, give the replica the primary's admin_token",
				f.cfg.Primary, status.Convert(err).Message())
			ps.lastErr.Store(&msg)
			if prevErr == nil || *prevErr != msg {
				f.log.Error("replica: authentication failed; set replication.token to the same value on both nodes, or, "+
					"without replication.token, give the replica the primary's admin_token",
					"pool", ps.name, "primary", f.cfg.Primary, "err", err)
			}
			backoff = f.cfg.MaxBackoff
		} else if status.Code(err) == codes.OutOfRange {
			f.log.Warn("replica: primary no longer has the records this pool needs; bootstrapping from its snapshot",
				"pool", ps.name, "err", err)
			if berr := f.bootstrap(ps); berr != nil {
				f.log.Error("replica: bootstrap failed", "pool", ps.name, "err", berr)
			} else {
				progressed = true
			}
		} else if de := (*divergedError)(nil); errors.As(err, &de) {
			// The upstream's log differs from ours: judge by (epoch, seq)
			// on our own log whether to cut (only for a newer epoch that
			// parted from our log at a known seq) or to refuse.
			cut, ok := f.judge(ps, de)
			if ok {
				if cerr := f.cutTail(ps, cut); cerr != nil {
					// Retrying would reopen the pool and fail the same
					// way: stop following it until an operator steps in.
					ps.diverged.Store(true)
					f.log.Error("replica: cutting the divergent tail failed; this pool no longer follows the primary", "pool", ps.name,
						"common_seq", cut, "err", cerr)
					return
				}
				progressed = true
			} else {
				backoff = f.cfg.MaxBackoff
			}
		} else if status.Code(err) == codes.Aborted || status.Code(err) == codes.FailedPrecondition {
			// The upstream refused to stream to us (it is behind us, we
			// would follow each other, or it is the older history).
			// Nothing is cut; we keep asking, slowly, in case it catches
			// up or the operator repoints one of us.
			if status.Code(err) == codes.Aborted {
				ps.diverged.Store(true)
			}
			f.refuse(ps, status.Convert(err).Message())
			backoff = f.cfg.MaxBackoff
		} else if err != nil {
			f.log.Warn("replica: stream from primary ended; reconnecting", "pool", ps.name,
				"primary", f.cfg.Primary, "err", err, "backoff", backoff)
		}
		if progressed {
			backoff = f.cfg.BaseBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !progressed {
			backoff = min(backoff*2, f.cfg.MaxBackoff)
		}
	}
}

// session tails the pool's stream from the engine's last seq + 1 until an
// error. progressed says whether anything was applied.
func (f *Follower) session(ps *poolState) (progressed bool, err error) {
	eng, err := f.cfg.Host.Engine(ps.name)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	from := eng.LastSeq() + 1
	// Our current epoch is the epoch of our last record: epochs only change
	// through records. The primary checks it against its own record there.
	var lastEpoch uint64
	if from > 1 {
		lastEpoch = eng.Epoch()
	}
	stream, err := f.repl.StreamWAL(f.outgoing(ctx), &rpv1.StreamWALRequest{Pool: ps.name, FromSeq: from, LastEpoch: lastEpoch})
	if err != nil {
		return false, err
	}
	// A refusal arrives with the status, at Header or at the first Recv.
	refused := func(err error) error {
		tr := stream.Trailer()
		f.heard(tr)
		if status.Code(err) == codes.Aborted {
			if v := tr.Get(HistoryKey); len(v) == 1 {
				if h, perr := ParseHistory(v[0]); perr == nil {
					return &divergedError{up: h, err: err}
				}
			}
		}
		return err
	}
	hdr, err := stream.Header()
	if err != nil {
		return false, refused(err)
	}
	// A stream the primary accepted starts with a header announcing its
	// committed seq; a refusal without one (trailers only) also passes
	// Header, and fails at the first Recv.
	v := hdr.Get(PrimarySeqKey)
	if len(v) != 1 {
		_, err := stream.Recv()
		if err == nil {
			err = fmt.Errorf("replica: primary %s did not announce its committed seq", f.cfg.Primary)
		}
		return false, refused(err)
	}
	seq, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		return false, fmt.Errorf("replica: primary's %s header %q: %w", PrimarySeqKey, v[0], err)
	}
	ps.heard(seq)
	if seq > ps.primarySeq.Load() {
		ps.primarySeq.Store(seq)
	}
	f.heard(hdr)
	ps.lastHeard.Store(time.Now().UnixNano())
	ps.connected.Store(true)
	ps.refused.Store(nil)
	ps.diverged.Store(false)
	ps.lastErr.Store(nil)
	// Synced once everything the primary had when the stream opened is
	// applied; a fixed target, so a replica under steady load (the primary
	// always a batch ahead) gets there too. Its lag from then on is for
	// the readiness bounds to judge.
	syncTarget := seq
	if eng.LastSeq() >= syncTarget {
		ps.synced.Store(true)
		ps.behindSince.Store(0) // caught up at connect: no lag since the disconnect
	}
	f.log.Info("replica: following primary", "pool", ps.name, "primary", f.cfg.Primary, "from_seq", from,
		"primary_seq", seq)

	// A reader goroutine keeps the next records coming while Apply runs.
	type item struct {
		rec *rpv1.WALRecord
		err error
		at  int64 // arrival, unix ns
	}
	ch := make(chan item, 4096)
	go func() {
		defer close(ch)
		for {
			r, err := stream.Recv()
			now := time.Now().UnixNano()
			if err == nil {
				// Heard, even if not applied yet: what a promotion now
				// would lose.
				if r.GetSeq() > ps.primarySeq.Load() {
					ps.primarySeq.Store(r.GetSeq())
				}
				if r.GetCommit() {
					ps.heard(r.GetSeq())
				}
				ps.lastHeard.Store(now)
			}
			select {
			case ch <- item{r, err, now}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Acks go out on their own goroutine so a slow ack never holds up
	// applying. They report what is durable here (DurableSeq): after an
	// Apply, and on a short tick, because under durability interval the
	// fsync that makes records durable comes after the Apply returned.
	nudge := make(chan struct{}, 1)
	ack := func() {
		select {
		case nudge <- struct{}{}:
		default:
		}
	}
	if f.cfg.ID != "" {
		go func() {
			tick := time.NewTicker(ackTick)
			defer tick.Stop()
			var acked uint64
			for {
				select {
				case <-ctx.Done():
					return
				case <-nudge:
				case <-tick.C:
				}
				seq := eng.DurableSeq()
				if seq <= acked {
					continue
				}
				_, err := f.repl.Ack(f.outgoing(ctx), &rpv1.AckRequest{Pool: ps.name, Replica: f.cfg.ID, Seq: seq})
				if err != nil {
					if ctx.Err() == nil {
						f.log.Debug("replica: ack failed", "pool", ps.name, "seq", seq, "err", err)
					}
					continue
				}
				acked = seq
			}
		}()
	}
	ack() // what is already durable here counts too
	var batch []wal.Record
	next := from
	for it := range ch {
		if it.err != nil {
			// Whole batches received before the stream ended are the
			// primary's committed records: apply them before returning,
			// or a primary that just died takes them along, and a
			// promotion now would lose them.
			if n := lastCommit(batch); n > 0 {
				if err := eng.Apply(ctx, batch[:n]); err != nil {
					return progressed, fmt.Errorf("replica: apply seqs %d..%d: %w", batch[0].Seq, batch[n-1].Seq, err)
				}
				progressed = true
				ack()
			}
			return progressed, refused(it.err)
		}
		r, err := FromProto(it.rec)
		if err != nil {
			return progressed, err
		}
		if r.Seq != next {
			return progressed, fmt.Errorf("replica: primary sent seq %d, want %d", r.Seq, next)
		}
		next++
		ps.behindSince.CompareAndSwap(0, it.at)
		batch = append(batch, r)
		if !r.Commit || (len(ch) > 0 && len(batch) < f.cfg.MaxApply) {
			continue
		}
		if err := eng.Apply(ctx, batch); err != nil {
			return progressed, fmt.Errorf("replica: apply seqs %d..%d: %w", batch[0].Seq, r.Seq, err)
		}
		progressed = true
		ack()
		if eng.LastSeq() >= syncTarget {
			ps.synced.Store(true)
		}
		if len(ch) == 0 {
			ps.behindSince.Store(0) // applied everything received
		} else {
			// The next record arrived no earlier than this one: the lag
			// is at most this record's age, not the age of the session.
			ps.behindSince.Store(it.at)
		}
		batch = batch[:0]
	}
	return progressed, errors.New("replica: stream closed")
}

// lastCommit is the length of recs' longest prefix that ends a batch.
func lastCommit(recs []wal.Record) int {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Commit {
			return i + 1
		}
	}
	return 0
}

// ackTick is how often a follower re-checks its durable seq for acks.
const ackTick = 5 * time.Millisecond

// HistoryKey is the trailer of an ABORTED StreamWAL in which the upstream
// sends its log's epoch history (History.String), so the follower can
// find on its own log where the two part.
const HistoryKey = "rewardpool-epoch-history"

// PrimarySeqKey is the StreamWAL response header in which the upstream
// announces the last seq it has committed when the stream opens, so a
// replica knows when it has caught up even if the upstream is idle.
const PrimarySeqKey = "rewardpool-primary-seq"

// divergedError is the upstream's refusal to stream onto our log, with
// the upstream's epoch history.
type divergedError struct {
	up  History
	err error
}

func (e *divergedError) Error() string { return e.err.Error() }
func (e *divergedError) Unwrap() error { return e.err }

// refuse records and logs why the upstream does not stream this pool.
func (f *Follower) refuse(ps *poolState, why string) {
	ps.refused.Store(&why)
	f.log.Error("replica: the upstream refused to stream this pool; nothing was cut, retrying slowly",
		"pool", ps.name, "upstream", f.cfg.Primary, "reason", why)
}

// judge decides what to do about an upstream whose log differs from ours:
// ok with the seq to cut after only when the upstream's history is a newer
// epoch that parted from our log at a known seq.
func (f *Follower) judge(ps *poolState, de *divergedError) (common uint64, ok bool) {
	eng, err := f.cfg.Host.Engine(ps.name)
	if err != nil {
		f.refuse(ps, err.Error())
		return 0, false
	}
	own, err := ps.hist.Get(eng)
	if err != nil {
		f.refuse(ps, err.Error())
		return 0, false
	}
	v, common := Judge(own, de.up)
	switch v {
	case Cut:
		return common, true
	case Behind:
		f.refuse(ps, fmt.Sprintf("the upstream's log ends at seq %d, behind this node's %d in the same history: "+
			"it cannot be followed until it has caught up (nothing was cut; point this node at a node at least as far along, or promote it)",
			de.up.Last, own.Last))
	case UpstreamOlder:
		ps.diverged.Store(true)
		f.refuse(ps, fmt.Sprintf("this node's log is the newer history (epoch %d from seq %d, the upstream's is epoch %d there): "+
			"it must not follow an older history (a stale former primary?); nothing was cut",
			own.At(common+1), common+1, de.up.At(common+1)))
	case SplitBrain:
		ps.diverged.Store(true)
		f.refuse(ps, fmt.Sprintf("the logs part at seq %d into two epochs of the same generation (%d here, %d upstream): "+
			"two replicas were promoted from one primary; neither history is newer, nothing was cut. "+
			"Choose the survivor and rebuild this pool from it (move its data directory away to bootstrap from a snapshot)",
			common+1, own.At(common+1), de.up.At(common+1)))
	default:
		ps.diverged.Store(true)
		f.refuse(ps, fmt.Sprintf("the logs differ, but not within the seqs both still hold (here %d..%d, upstream %d..%d): "+
			"nothing was cut; rebuild this pool from the upstream (move its data directory away to bootstrap from a snapshot)",
			own.First, own.Last, de.up.First, de.up.Last))
	}
	f.log.Warn("replica: upstream's log differs from this pool's", "pool", ps.name, "verdict", v, "err", de.err)
	return 0, false
}

// cutTail saves the records after common to <pool dir>/divergent-<time>.log
// (one text line each, for audit), cuts them from the log, sets aside the
// snapshots that include them, and reopens the pool at common.
func (f *Follower) cutTail(ps *poolState, common uint64) error {
	eng, err := f.cfg.Host.Engine(ps.name)
	if err != nil {
		return err
	}
	if common >= eng.LastSeq() {
		// Nothing of ours lies past the common point, yet the primary
		// refused us: cutting would change nothing and loop.
		return fmt.Errorf("the primary reports the logs agree up to seq %d, at or past our last seq %d", common, eng.LastSeq())
	}
	var saved string
	var dropped int
	err = f.cfg.Host.Reinstall(ps.name, func(dir string) error {
		walDir := filepath.Join(dir, "wal")
		l, err := wal.Open(walDir, wal.Options{Logger: f.log})
		if err != nil {
			return err
		}
		var b []byte
		err = l.Scan(common+1, func(r *wal.Record) error {
			dropped++
			if r.ItemID == "" && r.Item >= 0 {
				r.ItemID = fmt.Sprintf("slot:%d", r.Item) // the binary codec logs draws by slot
			}
			b = fmt.Appendf(b, "%d\t%d\t%s\n", r.Seq, r.Epoch, r.String())
			return nil
		})
		l.Close()
		if err != nil {
			return fmt.Errorf("read the divergent tail: %w", err)
		}
		saved = filepath.Join(dir, fmt.Sprintf("divergent-%d.log", time.Now().UnixNano()))
		if err := fsys.WriteFileAtomic(fsys.OS, saved, b, 0o644); err != nil {
			return err
		}
		if _, err := wal.TruncateAfter(walDir, common, wal.Options{Logger: f.log}); err != nil {
			return fmt.Errorf("cut the log after seq %d: %w", common, err)
		}
		snapDir := filepath.Join(dir, "snapshots")
		infos, err := snapshot.List(snapDir)
		if err != nil {
			return err
		}
		for _, in := range infos {
			if in.Seq > common {
				p := filepath.Join(snapDir, in.Name)
				if err := fsys.Rename(fsys.OS, p, fsys.FreeName(fsys.OS, p+".divergent")); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.log.Warn("replica: cut the tail where this pool's log parted from the primary's",
		"pool", ps.name, "common_seq", common, "records_dropped", dropped, "saved_to", saved)
	return nil
}

// bootstrap fetches the primary's newest snapshot and installs it as the
// pool's only state: snapshot in place, local log removed.
func (f *Follower) bootstrap(ps *poolState) error {
	eng, err := f.cfg.Host.Engine(ps.name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	stream, err := f.repl.GetSnapshot(f.outgoing(ctx), &rpv1.GetSnapshotRequest{Pool: ps.name})
	if err != nil {
		return err
	}
	// Fetch into a temp file beside the data dir's pool directory first:
	// the engine stays open (serving reads) while the bytes arrive.
	tmp, err := os.CreateTemp(os.TempDir(), "rewardpool-bootstrap-*.snap")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var seq uint64
	for {
		c, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("replica: receive snapshot: %w", err)
		}
		seq = c.GetSeq()
		if _, err := tmp.Write(c.GetData()); err != nil {
			return err
		}
		if c.GetLast() {
			break
		}
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if local := eng.LastSeq(); seq < local {
		return fmt.Errorf("replica: primary's snapshot is at seq %d, behind this replica's %d: the logs diverged (not handled yet)", seq, local)
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	if st, err := snapshot.Decode(data); err != nil {
		return fmt.Errorf("replica: snapshot from primary: %w", err)
	} else if st.Seq != seq {
		return fmt.Errorf("replica: snapshot from primary holds seq %d, chunks said %d", st.Seq, seq)
	}
	err = f.cfg.Host.Reinstall(ps.name, func(dir string) error {
		return install(dir, seq, data)
	})
	if err != nil {
		return err
	}
	ps.bootstraps.Add(1)
	f.log.Info("replica: bootstrapped from primary's snapshot; any earlier log is kept aside as wal.replaced-<time>",
		"pool", ps.name, "seq", seq)
	return nil
}

// install makes the snapshot the pool's only state. The old log goes
// first, durably (renamed to wal.replaced-<time>, or removed when it holds
// no segment): a power cut must never leave the new snapshot in front of a
// log that does not continue it. Then the snapshot is written atomically
// (snapshot.WriteEncoded) and the other snapshots removed, durably.
func install(dir string, seq uint64, data []byte) error {
	fs := fsys.OS
	walPath := filepath.Join(dir, "wal")
	// Set aside, not deleted: if this node was a former primary whose
	// divergent records the new primary no longer keeps, it is the only
	// copy of them, for audit.
	if segs, _ := filepath.Glob(filepath.Join(walPath, "*.wal")); len(segs) > 0 {
		aside := fsys.FreeName(fs, filepath.Join(dir, fmt.Sprintf("wal.replaced-%d", time.Now().UnixNano())))
		if err := fsys.Rename(fs, walPath, aside); err != nil {
			return err
		}
	} else if err := fsys.RemoveAll(fs, walPath); err != nil {
		return err
	}
	snapDir := filepath.Join(dir, "snapshots")
	if err := fsys.MkdirAll(fs, snapDir, 0o755); err != nil {
		return err
	}
	final, err := snapshot.WriteEncoded(snapDir, seq, data)
	if err != nil {
		return err
	}
	infos, err := snapshot.List(snapDir)
	if err != nil {
		return err
	}
	for _, in := range infos {
		if in.Name != filepath.Base(final) {
			if err := fs.Remove(filepath.Join(snapDir, in.Name)); err != nil {
				return err
			}
		}
	}
	return fs.SyncDir(snapDir)
}
