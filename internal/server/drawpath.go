package server

import (
	"context"
	"sync"
	"time"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/internal/drawbatch"
)

// drawScratch is what one draw request needs between the engine and the
// answer: the engine's results, the batch table built from them (the
// compact answer, and the metrics count per distinct outcome), and the
// HTTP answer's bytes. It is pooled, so a draw allocates nothing of its own
// once the pool is warm.
type drawScratch struct {
	res []rewardpool.DrawResult
	bd  drawbatch.Builder
	// consecutive: the results' request ids are first, first+1, ... (always
	// so for one request's draws), and no draw has pity set (the compact
	// form does not carry it); the compact answer needs both.
	consecutive bool
	counts      []uint64 // per outcome of the table
	buf         []byte   // the HTTP answer
}

var scratchPool = sync.Pool{New: func() any { return new(drawScratch) }}

// maxPooledDraws bounds what goes back to the pool: a rare huge request
// should not pin its buffers for good.
const maxPooledDraws = 1 << 16

func getScratch() *drawScratch { return scratchPool.Get().(*drawScratch) }

func putScratch(sc *drawScratch) {
	if cap(sc.res) > maxPooledDraws || cap(sc.buf) > 64*maxPooledDraws {
		return
	}
	clear(sc.res) // drop the item id strings
	sc.res = sc.res[:0]
	sc.buf = sc.buf[:0]
	scratchPool.Put(sc)
}

// drawInto runs one draw request into sc: sc.res holds the results and the
// batch table is built. count 0 means 1 on every transport.
func (s *Server) drawInto(ctx context.Context, sc *drawScratch, pool string, count int64, key, user string) error {
	e, count, err := s.checkDraw(pool, count, key, user)
	if err != nil {
		return err
	}
	sc.res, err = e.DrawInto(ctx, sc.res[:0], rewardpool.DrawRequest{Count: int(count), IdempotencyKey: key, UserID: user})
	if err != nil {
		return err
	}
	if err := s.awaitReplicas(ctx, pool, e); err != nil {
		return err
	}
	sc.table(false)
	return nil
}

// noopInto is noop into sc, with its table. Placeholders have request id
// 0; their compact form has first_request_id 0.
func (s *Server) noopInto(sc *drawScratch, pool string, count int64, user string) error {
	_, count, err := s.checkDraw(pool, count, "", user)
	if err != nil {
		return err
	}
	sc.res = sc.res[:0]
	for range count {
		sc.res = append(sc.res, rewardpool.DrawResult{ItemID: "noop"})
	}
	sc.table(true)
	return nil
}

// table builds the batch table of sc.res. placeholders: the ids are not
// real (noop), the batch counts as consecutive from 0.
func (sc *drawScratch) table(placeholders bool) {
	var first uint64
	if len(sc.res) > 0 && !placeholders {
		first = sc.res[0].RequestID
	}
	sc.bd.Reset(first)
	sc.bd.Grow(len(sc.res))
	sc.consecutive = true
	for i, r := range sc.res {
		if !placeholders && r.RequestID != first+uint64(i) || r.Pity != "" {
			sc.consecutive = false
		}
		sc.bd.Add(r.ItemID, drawOutcome(r))
	}
}

// compact reports whether the compact answer can be sent for sc.
func (sc *drawScratch) compact() bool { return sc.consecutive }

// observe records a served draw request: its latency and its draws by
// outcome (one counter update per distinct outcome, not per draw).
func (s *Server) observe(pool, transport string, start time.Time, sc *drawScratch) {
	s.metrics.latency.get([3]string{pool, transport}).Observe(time.Since(start).Seconds())
	b := sc.bd.Batch()
	sc.counts = sc.counts[:0]
	for range len(b.Items) + len(b.Errors) {
		sc.counts = append(sc.counts, 0)
	}
	for _, x := range b.Index {
		sc.counts[x]++
	}
	replayed := len(sc.res) > 0 && sc.res[0].Replayed
	s.metrics.countOutcomes(pool, b, sc.counts, replayed)
}
