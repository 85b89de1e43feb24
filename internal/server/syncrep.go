package server

import (
	"context"
	"sync"
	"time"

	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/grpc/codes"
)

// ErrNotReplicated is the cause of the error a draw gets when
// replication.min_sync_replicas replicas did not confirm it in time.
var ErrNotReplicated = errorf(codes.Unavailable, nil, "not confirmed by enough replicas")

// acks tracks, for one pool, the durable position each replica reported,
// and wakes the requests waiting for enough of them.
type acks struct {
	mu      sync.Mutex
	pos     map[string]uint64
	changed chan struct{} // closed and replaced on every advance
}

func newAcks() *acks { return &acks{pos: map[string]uint64{}, changed: make(chan struct{})} }

// ack raises replica's position to seq.
func (a *acks) ack(replica string, seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq <= a.pos[replica] {
		return
	}
	a.pos[replica] = seq
	close(a.changed)
	a.changed = make(chan struct{})
}

// count returns how many replicas hold seq, and the channel that closes on
// the next change.
func (a *acks) count(seq uint64) (int, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, p := range a.pos {
		if p >= seq {
			n++
		}
	}
	return n, a.changed
}

// wait blocks until n replicas hold seq, ctx ends, or timeout passes.
func (a *acks) wait(ctx context.Context, seq uint64, n int, timeout time.Duration) error {
	var timer <-chan time.Time
	for {
		have, changed := a.count(seq)
		if have >= n {
			return nil
		}
		if timer == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer:
			return errorf(codes.Unavailable, ErrNotReplicated,
				"the draw is durable on the primary but only %d of the %d required replicas confirmed seq %d within %v; "+
					"retry with the same idempotency key to get the same result once they catch up", have, n, seq, timeout)
		}
	}
}

// defaultSyncTimeout bounds how long a draw waits for replica confirmations.
const defaultSyncTimeout = 5 * time.Second

// awaitReplicas holds an answer until min_sync_replicas replicas hold
// everything the engine had committed when the call returned (which covers
// the caller's batch). A no-op on a replica or with min_sync_replicas 0.
func (s *Server) awaitReplicas(ctx context.Context, pool string, e *rewardpool.Engine) error {
	n := s.cfg.Replication.MinSyncReplicas
	if n <= 0 || e.IsReplica() {
		return nil
	}
	ent, err := s.pools.Load().entry(pool)
	if err != nil {
		return err
	}
	timeout := time.Duration(s.syncTimeout.Load())
	if timeout <= 0 {
		timeout = defaultSyncTimeout
	}
	return ent.acks.wait(ctx, e.LastSeq(), n, timeout)
}

// Ack records a replica's durable position.
func (r *replicationService) Ack(ctx context.Context, req *rpv1.AckRequest) (*rpv1.AckResponse, error) {
	p := r.s.pools.Load()
	if p == nil {
		return nil, toStatus(errorf(codes.Unavailable, ErrNotReady, "server is not ready"))
	}
	ent, err := p.entry(req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetReplica() == "" {
		return nil, toStatus(errorf(codes.InvalidArgument, rewardpool.ErrInvalidRequest, "replica: must not be empty"))
	}
	ent.acks.ack(req.GetReplica(), req.GetSeq())
	return &rpv1.AckResponse{}, nil
}
