package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/internal/replica"
	"github.com/rewardpool/rewardpool/pool"
	"github.com/rewardpool/rewardpool/stream"
	"google.golang.org/grpc/codes"
)

// Error is a service error with the code both transports map from: a gRPC
// code, an HTTP status and the stable name used in JSON bodies.
type Error struct {
	Code codes.Code
	// Reason, when set, names a case a client must tell apart from others
	// with the same gRPC code: it is the JSON "code" over HTTP (instead of
	// the code's name) and an ErrorInfo detail over gRPC.
	Reason  string
	Message string
	Err     error // the cause, for errors.Is
}

// Reasons: stable names clients branch on.
const (
	// ReasonOutcomeUnknown: the log write or fsync of the request's batch
	// failed; it may or may not have been applied (it may come back when
	// the pool is reopened). Retry with the same idempotency key.
	ReasonOutcomeUnknown = "OUTCOME_UNKNOWN"
	// ReasonIdempotencyMismatch: the idempotency key was already used for a
	// request with a different count. Nothing was drawn.
	ReasonIdempotencyMismatch = "IDEMPOTENCY_KEY_MISMATCH"
	// ReasonUserLimit: a per-user cap of the pool's rules refused the whole
	// request (gRPC RESOURCE_EXHAUSTED, HTTP 429); the message names the
	// cap and when it resets. Nothing was drawn, no request id taken.
	ReasonUserLimit = "USER_LIMIT"
	// ReasonPoolClosed: the pool's window is not open (gRPC
	// FAILED_PRECONDITION, HTTP 403); the message gives the window.
	ReasonPoolClosed = "POOL_CLOSED"
)

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(code codes.Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// Sentinels for failures the service layer finds itself.
var (
	ErrUnknownPool  = errors.New("unknown pool")
	ErrNotReady     = errors.New("server is recovering")
	ErrUnauthorized = errors.New("unauthorized")
)

// asError maps any error from the engine or the service to an *Error.
func asError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	switch {
	case errors.Is(err, rewardpool.ErrInvalidRequest), errors.Is(err, rewardpool.ErrInvalidItem):
		return errorf(codes.InvalidArgument, err, "%v", err)
	case errors.Is(err, rewardpool.ErrUnknownItem):
		return errorf(codes.NotFound, err, "%v", err)
	case errors.Is(err, rewardpool.ErrDuplicateItem):
		return errorf(codes.AlreadyExists, err, "%v", err)
	case errors.Is(err, rewardpool.ErrReplica):
		return errorf(codes.FailedPrecondition, err, "this node is a read-only replica: send draws and admin changes to the primary")
	case errors.Is(err, rewardpool.ErrNotReplica):
		return errorf(codes.FailedPrecondition, err, "this node is not a replica")
	case errors.Is(err, rewardpool.ErrOutcomeUnknown):
		// Not UNAVAILABLE: default retry policies (gRPC service configs,
		// proxies, client libraries) retry UNAVAILABLE blindly, and a blind
		// retry without the idempotency key is a second draw. UNKNOWN is in
		// no standard retryable set and says what is true: the outcome is
		// not known. The ErrorInfo reason lets clients tell it apart from
		// other UNKNOWN errors; over HTTP it is 503 OUTCOME_UNKNOWN.
		se := errorf(codes.Unknown, err, "%v", err)
		se.Reason = ReasonOutcomeUnknown
		return se
	case errors.Is(err, rewardpool.ErrIdempotencyMismatch):
		// The key's first answer stands; replaying it for a request of
		// another size would hand back an answer to a different question.
		se := errorf(codes.FailedPrecondition, err, "%v", err)
		se.Reason = ReasonIdempotencyMismatch
		return se
	case errors.Is(err, rewardpool.ErrUserLimit):
		se := errorf(codes.ResourceExhausted, err, "%v", err)
		se.Reason = ReasonUserLimit
		return se
	case errors.Is(err, rewardpool.ErrPoolClosed):
		se := errorf(codes.FailedPrecondition, err, "%v", err)
		se.Reason = ReasonPoolClosed
		return se
	case errors.Is(err, rewardpool.ErrWAL):
		return errorf(codes.Unavailable, err, "%v", err)
	case errors.Is(err, rewardpool.ErrClosed):
		return errorf(codes.Unavailable, err, "server is shutting down")
	case errors.Is(err, context.Canceled):
		return errorf(codes.Canceled, err, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(codes.DeadlineExceeded, err, "deadline exceeded")
	}
	return errorf(codes.Internal, err, "%v", err)
}

// pools is the set of pools by name. It is built once recovery has
// finished and its membership never changes afterwards, so reads need no
// lock; a pool's engine (and streamer) can be swapped atomically (a
// replica bootstrapping from a snapshot reopens its engine).
type pools struct {
	names   []string
	entries map[string]*poolEntry
}

// poolEntry is one pool: its current engine and the streamer fed by it.
type poolEntry struct {
	name string
	mu   sync.Mutex // serialises swaps
	node atomic.Pointer[poolNode]
	acks *acks // replicas' durable positions, for min_sync_replicas
}

type poolNode struct {
	eng  *rewardpool.Engine
	st   *stream.Streamer
	hist replica.HistoryCache // the log's epochs, for StreamWAL's continuity check
}

func (p *pools) entry(name string) (*poolEntry, error) {
	e, ok := p.entries[name]
	if !ok {
		return nil, errorf(codes.NotFound, ErrUnknownPool, "pool %q not found", name)
	}
	return e, nil
}

func (p *pools) get(name string) (*rewardpool.Engine, error) {
	e, err := p.entry(name)
	if err != nil {
		return nil, err
	}
	return e.node.Load().eng, nil
}

// engine returns the current engine of a pool known to exist.
func (p *pools) engine(name string) *rewardpool.Engine { return p.entries[name].node.Load().eng }

func newPools(m map[string]*poolNode) *pools {
	p := &pools{entries: map[string]*poolEntry{}}
	for name, n := range m {
		p.names = append(p.names, name)
		e := &poolEntry{name: name, acks: newAcks()}
		e.node.Store(n)
		p.entries[name] = e
	}
	sort.Strings(p.names)
	return p
}

// drawOutcome names the result of one draw in JSON and in metrics.
func drawOutcome(r rewardpool.DrawResult) string {
	if r.Err == nil {
		return ""
	}
	if errors.Is(r.Err, rewardpool.ErrPoolEmpty) {
		return "POOL_EMPTY"
	}
	return "ERROR"
}

// weightUnits converts an API weight (a JSON/proto double with up to 6
// decimal places) to exact integer units. The shortest decimal that
// round-trips the double is what the client wrote, so "0.1" stays exact.
func weightUnits(w float64) (uint64, error) {
	if w <= 0 {
		return 0, errorf(codes.InvalidArgument, rewardpool.ErrInvalidItem, "weight: %v must be greater than 0", w)
	}
	u, err := pool.ParseWeight(strconv.FormatFloat(w, 'f', -1, 64))
	if err != nil {
		return 0, errorf(codes.InvalidArgument, rewardpool.ErrInvalidItem, "weight: %v", err)
	}
	return u, nil
}

// putItem applies a partial item update: fields left nil keep their value,
// and a missing item is created (then both fields are required).
func putItem(ctx context.Context, e *rewardpool.Engine, id string, quantity *int64, weight *uint64) error {
	if id == "" {
		return errorf(codes.InvalidArgument, rewardpool.ErrInvalidItem, "item_id: must not be empty")
	}
	it := rewardpool.Item{ID: id}
	if weight != nil {
		it.Weight = *weight
	}
	if quantity != nil {
		it.Quantity = *quantity
	}
	if quantity == nil || weight == nil {
		st, err := e.State(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, cur := range st.Items {
			if cur.ID == id {
				found = true
				if quantity == nil {
					it.Quantity = cur.Quantity
				}
				if weight == nil {
					it.Weight = cur.Weight
				}
			}
		}
		if !found {
			missing := "quantity"
			if weight == nil {
				missing = "weight"
			}
			return errorf(codes.InvalidArgument, rewardpool.ErrInvalidItem,
				"%s: required when creating item %q", missing, id)
		}
		// Between the read above and the write below another admin call
		// may change the item; admin changes are rare and the last write
		// wins, which is what a PUT means.
	}
	return e.PutItem(ctx, it)
}

// poolView is a pool's committed state as the API shows it.
type poolView struct {
	Name   string
	State  rewardpool.State
	Digest string // state digest at State.Seq; equal on replicas at equal seq
}

// Draw requests are served by drawInto (drawpath.go). count 0 means 1 on
// every transport: gRPC cannot tell 0 from an absent field, so 0 is the
// default everywhere.

// checkDraw does the checks of draw that need no engine call: the pool
// exists and the server is ready, count and key are within bounds. It
// returns the engine and the effective count.
func (s *Server) checkDraw(pool string, count int64, key, user string) (*rewardpool.Engine, int64, error) {
	e, err := s.pool(pool)
	if err != nil {
		return nil, 0, err
	}
	if err := s.replicaErr(); err != nil {
		return nil, 0, err
	}
	// Capped only so the conversion to int is safe: far above any limit.
	n, err := e.CheckDraw(rewardpool.DrawRequest{Count: int(min(count, math.MaxInt32)), IdempotencyKey: key, UserID: user})
	if err != nil {
		return nil, 0, err
	}
	count = int64(n)
	return e, count, nil
}

func (s *Server) getPool(ctx context.Context, name string) (poolView, error) {
	if name == "" {
		return poolView{}, errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, "pool: must not be empty")
	}
	e, err := s.pool(name)
	if err != nil {
		return poolView{}, err
	}
	st, digest, err := e.StateDigest(ctx)
	if err != nil {
		return poolView{}, err
	}
	return poolView{Name: name, State: st, Digest: digest}, nil
}

func (s *Server) listPools(ctx context.Context) ([]poolView, error) {
	p := s.pools.Load()
	if p == nil || !s.ready.Load() {
		return nil, errorf(codes.Unavailable, ErrNotReady, "server is not ready (recovering or shutting down)")
	}
	out := make([]poolView, 0, len(p.names))
	for _, name := range p.names {
		v, err := s.getPool(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) putItem(ctx context.Context, pool, id string, quantity *int64, weight *uint64) (poolView, error) {
	e, err := s.pool(pool)
	if err != nil {
		return poolView{}, err
	}
	if err := s.replicaErr(); err != nil {
		return poolView{}, err
	}
	if err := putItem(ctx, e, id, quantity, weight); err != nil {
		return poolView{}, err
	}
	s.log.Info("rewardpool: item changed", "pool", pool, "item", id)
	if err := s.awaitReplicas(ctx, pool, e); err != nil {
		return poolView{}, err
	}
	return s.getPool(ctx, pool)
}

func (s *Server) deleteItem(ctx context.Context, pool, id string) (poolView, error) {
	e, err := s.pool(pool)
	if err != nil {
		return poolView{}, err
	}
	if err := s.replicaErr(); err != nil {
		return poolView{}, err
	}
	if id == "" {
		return poolView{}, errorf(codes.InvalidArgument, rewardpool.ErrInvalidItem, "item_id: must not be empty")
	}
	if err := e.RemoveItem(ctx, id); err != nil {
		return poolView{}, err
	}
	s.log.Info("rewardpool: item removed", "pool", pool, "item", id)
	if err := s.awaitReplicas(ctx, pool, e); err != nil {
		return poolView{}, err
	}
	return s.getPool(ctx, pool)
}
