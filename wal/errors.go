package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) or are plain I/O errors with context.
var (
	// ErrCorrupt: a damaged record before the tail of the log. Open and Scan
	// return it inside a *CorruptError that says where; Repair fixes it.
	ErrCorrupt = errors.New("wal: corrupt record")
	// ErrPoisoned: a write or sync failed earlier. The log refuses writes
	// until it is reopened, because a failed fsync may have dropped dirty
	// pages: retrying it could report success for data that is gone.
	ErrPoisoned = errors.New("wal: log failed")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrGap: Scan asked for a seq older than the oldest segment, or the
	// segments on disk are not contiguous.
	ErrGap = errors.New("wal: missing records")
	// ErrRejected: Append refused a batch before writing anything (a record
	// the codec cannot represent, a seq gap). The log is not poisoned.
	ErrRejected = errors.New("wal: batch rejected")
	// ErrBadOptions: Options.Validate found a bad field; the message names it.
	ErrBadOptions = errors.New("wal: bad options")
)

// CorruptError says where a damaged record is. errors.Is(err, ErrCorrupt)
// holds for it.
type CorruptError struct {
	Segment string // file name of the segment, e.g. 00000000000000000017.wal
	Offset  int64  // byte offset of the bad record (0: the header)
	Seq     uint64 // seq expected at that offset
	Reason  string // what is wrong
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt record in segment %s at offset %d (seq %d): %s; %s",
		e.Segment, e.Offset, e.Seq, e.Reason, e.Hint())
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Hint tells the operator what to do.
func (e *CorruptError) Hint() string {
	return "records from this point on cannot be trusted; run `rewardpool wal repair <dir>` " +
		"to truncate the log there (the damaged segment is kept as <name>.broken), " +
		"then let the node catch up from a replica or snapshot"
}
