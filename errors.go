package rewardpool

import (
	"errors"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/pool"
)

// Sentinel errors. Every error the engine returns wraps one of these (or a
// context error), so callers can branch with errors.Is.
var (
	// ErrPoolEmpty is the Err of a DrawResult when no item had stock left.
	// The draw still took a request id and was logged.
	ErrPoolEmpty = errors.New("rewardpool: pool empty")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("rewardpool: engine closed")
	// ErrInvalidRequest is returned for a draw whose count or idempotency
	// key is out of range. Nothing was drawn.
	ErrInvalidRequest = errors.New("rewardpool: invalid request")
	// ErrIdempotencyMismatch is returned for a draw whose idempotency key is
	// remembered from a request with a different count. Nothing was drawn
	// and the first answer stands; a new request needs a new key.
	ErrIdempotencyMismatch = errors.New("rewardpool: idempotency key reused with a different request")
	// ErrOutcomeUnknown is returned to every caller of a batch whose write
	// or fsync failed. The outcome is unknown, not "nothing happened": a
	// failed write may have left part or all of the batch in the file and
	// a failed fsync usually leaves all of it there (in the page cache), so
	// a reopen may replay it. Retry with the same idempotency key (after
	// the engine is reopened) to learn the outcome without drawing twice;
	// a retry without a key may draw a second time. The error wraps the
	// cause.
	ErrOutcomeUnknown = errors.New("rewardpool: outcome unknown")
	// ErrWAL is returned for a write refused because an earlier write or
	// fsync of the write-ahead log failed (that earlier batch answered
	// ErrOutcomeUnknown), or because durably raising the directory's id
	// ceilings failed before its batch reached the log: this call was not
	// applied and wrote nothing, but the node is unhealthy. The engine refuses every write until it is
	// closed and reopened, because after a failed fsync the kernel may have
	// dropped the dirty pages: retrying could acknowledge data that is not
	// on disk. Close also returns it when the log had failed, and Open when
	// writing the initial catalog failed.
	ErrWAL = errors.New("rewardpool: write-ahead log failed")
	// ErrReplica is returned by Draw and the item changes on a replica: it
	// only applies its primary's log until it is promoted.
	ErrReplica = errors.New("rewardpool: read-only replica")
	// ErrNotReplica is returned by Apply and Promote on a primary.
	ErrNotReplica = errors.New("rewardpool: not a replica")
	// ErrLocked is returned by Open when another engine holds the directory.
	ErrLocked = errors.New("rewardpool: data directory in use")
	// ErrBadOptions is returned by Open for invalid Options; the message
	// names the field.
	ErrBadOptions = errors.New("rewardpool: bad options")
	// ErrRecovery is returned by Open when the snapshot and the log do not
	// fit together (missing records, a record that the state cannot take).
	// Log damage is reported as a *wal.CorruptError, which names the segment
	// and offset and points at the repair command.
	ErrRecovery = errors.New("rewardpool: recovery failed")

	// ErrUnprovable is returned by Open for a used data directory whose
	// snapshots and log cannot prove its state (a damaged snapshot and an
	// empty log, say). The engine never seeds such a directory again: the
	// message says what is missing and how to rebuild it.
	ErrUnprovable = errors.New("rewardpool: data directory cannot prove its state")
	// ErrJournalPending is returned by Open without Options.Journal, and by
	// the offline tools, for a directory whose last run committed through
	// a node journal and did not close cleanly.
	ErrJournalPending = errors.New("rewardpool: the node journal may hold this pool's last batches")

	// ErrInvalidItem, ErrDuplicateItem and ErrUnknownItem are returned by
	// the item admin calls; they are the pool package's errors.
	ErrInvalidItem   = pool.ErrInvalidItem
	ErrDuplicateItem = pool.ErrDuplicateItem
	ErrUnknownItem   = pool.ErrUnknownItem

	// ErrUserLimit is returned for a draw request that a per-user cap of
	// the pool's rules refuses as a whole (a *gacha.LimitError names the
	// cap and when it resets). Nothing was drawn and no request id taken.
	ErrUserLimit = gacha.ErrUserLimit
	// ErrPoolClosed is returned for a draw outside the pool's window (a
	// *gacha.ClosedError names it). Nothing was drawn and no request id
	// taken.
	ErrPoolClosed = gacha.ErrPoolClosed
)
