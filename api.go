package rewardpool

import (
	"context"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/wal"
)

// DrawRequest asks for Count draws (0 means 1), optionally under an
// idempotency key: a retry with the same key gets the first answer again.
type DrawRequest struct {
	Count          int
	IdempotencyKey string
	// UserID names the player the draws are for: non-empty UTF-8 of at
	// most 128 bytes. A pool whose rules keep per-player state (pity, caps)
	// refuses a draw without one.
	UserID string
}

// DrawResult is the outcome of one draw. Every draw takes a request id,
// including one that found the pool empty (Err == ErrPoolEmpty, ItemID "").
type DrawResult struct {
	RequestID uint64
	ItemID    string
	Err       error
	// Replayed is set when the answer is a remembered one, returned again
	// for a repeated idempotency key: nothing was drawn this time.
	Replayed bool
	// Pity says which of the pool's rules forced or boosted this draw
	// ("ssr hard pity", "ssr soft pity, featured guarantee", ...); "" when
	// none did. Not kept for a replayed answer.
	Pity string
}

// State is a consistent, committed view of the pool.
type State struct {
	Seq           uint64 // last log record applied
	Epoch         uint64
	LastRequestID uint64
	Items         []Item // live items in catalog order, with remaining quantities
	// Available holds, for items whose stock the rules release over time,
	// the units drawable now (the schedule bounded by the quantity); nil
	// when no item is paced.
	Available map[string]int64
}

// opKind says what a call asks the writer to do.
type opKind uint8

const (
	opDraw opKind = iota
	opAdmin
	opState
	opFunc    // run fn on the writer between batches
	opApply   // append records from a primary (replica)
	opPromote // turn a replica into a primary
)

// writes reports whether the op changes state (and so fails when the log
// has failed).
func (o opKind) writes() bool {
	return o == opDraw || o == opAdmin || o == opApply || o == opPromote
}

// call is one request travelling through the mailbox. Calls are pooled;
// the writer fills the answer fields and signals done.
type call struct {
	op      opKind
	count   int
	key     string
	user    string
	admin   adminOp
	results []DrawResult
	state   State
	fn      func()
	apply   []wal.Record
	epoch   uint64
	err     error
	done    chan struct{}
}

// Draw performs req.Count draws and returns their results once they are
// durable (per the durability mode). Draws that found the pool empty have
// Err == ErrPoolEmpty; the returned error is for the request as a whole
// (invalid request, closed engine, failed log, cancelled context).
func (e *Engine) Draw(ctx context.Context, req DrawRequest) ([]DrawResult, error) {
	return e.DrawInto(ctx, nil, req)
}

// DrawInto is Draw appending the results to dst, so a caller that reuses
// dst draws without allocating.
func (e *Engine) DrawInto(ctx context.Context, dst []DrawResult, req DrawRequest) ([]DrawResult, error) {
	n, err := e.CheckDraw(req)
	if err != nil {
		return dst, err
	}
	c := e.calls.Get().(*call)
	c.op, c.count, c.key, c.user = opDraw, n, req.IdempotencyKey, req.UserID
	// Grow here, on the caller's goroutine, so the writer never allocates.
	c.results = slices.Grow(dst, n)
	if err := e.submit(ctx, c); err != nil {
		e.release(c)
		return dst, err
	}
	res, err := c.results, c.err
	e.release(c)
	if err != nil {
		return dst, err
	}
	return res, nil
}

// CheckDraw validates req without drawing, as Draw would, and returns the
// effective count (0 means 1). Servers call it to refuse a request before
// starting it. Errors wrap ErrInvalidRequest and name the field.
func (e *Engine) CheckDraw(req DrawRequest) (int, error) {
	n := req.Count
	if n == 0 {
		n = 1
	}
	if n < 0 || n > e.opts.MaxDrawCount {
		return 0, fmt.Errorf("%w: count %d is outside 1..%d", ErrInvalidRequest, req.Count, e.opts.MaxDrawCount)
	}
	if len(req.IdempotencyKey) > maxKeyLen {
		return 0, fmt.Errorf("%w: idempotency_key is %d bytes, at most %d", ErrInvalidRequest, len(req.IdempotencyKey), maxKeyLen)
	}
	if !utf8.ValidString(req.IdempotencyKey) {
		// Every codec must be able to log the key, and jsonl needs UTF-8.
		return 0, fmt.Errorf("%w: idempotency_key is not valid UTF-8", ErrInvalidRequest)
	}
	if err := gacha.CheckUser(req.UserID); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if req.UserID == "" && e.w.needsUser.Load() {
		return 0, fmt.Errorf("%w: user_id is required: the pool's rules keep per-player state", ErrInvalidRequest)
	}
	return n, nil
}

// State returns the committed state of the pool.
func (e *Engine) State(ctx context.Context) (State, error) {
	c := e.calls.Get().(*call)
	c.op = opState
	if err := e.submit(ctx, c); err != nil {
		e.release(c)
		return State{}, err
	}
	st := c.state
	e.release(c)
	return st, nil
}

// adminOp is one catalog change.
type adminOp struct {
	kind   wal.Kind // KindAdd, KindSet, KindRemove or KindRules
	item   Item
	upsert bool   // KindSet: add the item if it does not exist
	rules  string // KindRules: the rules' JSON
}

// AddItem adds an item that is not in the catalog (ErrDuplicateItem if it is).
func (e *Engine) AddItem(ctx context.Context, it Item) error {
	return e.admin(ctx, adminOp{kind: wal.KindAdd, item: it})
}

// SetItem sets the remaining quantity and the weight of an existing item
// (ErrUnknownItem if there is none). Restocking is a SetItem.
func (e *Engine) SetItem(ctx context.Context, it Item) error {
	return e.admin(ctx, adminOp{kind: wal.KindSet, item: it})
}

// PutItem sets an item, adding it if it does not exist.
func (e *Engine) PutItem(ctx context.Context, it Item) error {
	return e.admin(ctx, adminOp{kind: wal.KindSet, item: it, upsert: true})
}

// RemoveItem removes an item from the catalog (ErrUnknownItem if absent).
func (e *Engine) RemoveItem(ctx context.Context, id string) error {
	return e.admin(ctx, adminOp{kind: wal.KindRemove, item: Item{ID: id}})
}

func (e *Engine) admin(ctx context.Context, op adminOp) error {
	c := e.calls.Get().(*call)
	c.op, c.admin = opAdmin, op
	err := e.submit(ctx, c)
	if err == nil {
		err = c.err
	}
	e.release(c)
	return err
}

// submit hands c to the writer and waits for its answer. Once c is in the
// mailbox it will be answered promptly (a batch takes one fsync), so the
// wait ignores ctx: returning early would abandon an outcome the writer is
// about to make durable.
func (e *Engine) submit(ctx context.Context, c *call) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.sendMu.RLock()
	if e.closed {
		e.sendMu.RUnlock()
		return ErrClosed
	}
	select {
	case e.mailbox <- c:
	default:
		select {
		case e.mailbox <- c:
		case <-ctx.Done():
			e.sendMu.RUnlock()
			return ctx.Err()
		}
	}
	e.sendMu.RUnlock()
	<-c.done
	return nil
}

func (e *Engine) release(c *call) {
	*c = call{done: c.done}
	e.calls.Put(c)
}

// onWriter runs fn on the writer goroutine after the current batch, where it
// may read the writer's state. Tests and tools use it.
func (e *Engine) onWriter(ctx context.Context, fn func()) error {
	c := e.calls.Get().(*call)
	c.op, c.fn = opFunc, fn
	err := e.submit(ctx, c)
	e.release(c)
	return err
}
