package wal

import (
	"fmt"
	"log/slog"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// DefaultSegmentSize is the rotation size when Options.SegmentSize is 0.
const DefaultSegmentSize = 64 << 20

// Options configure a Log. The zero value is valid and means the defaults.
type Options struct {
	// Codec is the record format of new segments: "binary" (default,
	// compact), "text" (one readable line per record) or "jsonl". Existing
	// segments are read with the codec named in their header, so changing
	// it only affects segments created afterwards.
	Codec string
	// Storage is how segments are written: "file" (default: pwrite +
	// fdatasync) or "mmap" (segment preallocated to SegmentSize, written
	// through a shared mapping, made durable with msync). Both produce the
	// same bytes on disk, so a log written with one opens with the other.
	Storage string
	// SegmentSize is the size at which a segment is sealed and a new one
	// started; default DefaultSegmentSize. A batch is never split across
	// segments: the log rotates before a batch that would not fit, and a
	// batch larger than SegmentSize gets a segment of its own.
	SegmentSize int64
	// Preallocate (file storage only) reserves blocks with fallocate ahead
	// of the data, so appends do not allocate blocks. The reservation grows
	// in steps as the segment fills (64 KiB at creation, doubling up to
	// 4 MiB per step, at most SegmentSize), so an idle log holds 64 KiB, not
	// a whole segment. mmap storage always preallocates SegmentSize.
	Preallocate bool
	// Logger receives warnings (torn tail cut at open) and info (rotation,
	// deletion); default slog.Default().
	Logger *slog.Logger
	// Hooks are failpoints for fault-injection tests; nil fields are no-ops.
	Hooks Hooks
	// FS is the file system the log lives on; nil means the operating
	// system's. Tests put the log on a power-loss simulator through it. The
	// mmap storage needs the operating system's.
	FS fsys.FS
	// ParentSyncs says that the caller makes the log directory's own entry
	// (and the directories above it) durable, typically with one fsync
	// while it creates several directories at once: Open then creates the
	// directory if it is missing without fsyncing it or its parents. The
	// log still fsyncs the directory itself whenever a segment appears or
	// goes, so the caller has only the directory's name to look after.
	ParentSyncs bool

	// zeroFill (tests and benchmarks only) writes zeros over a new file
	// segment instead of fallocate, to measure whether fdatasync gets
	// cheaper when no block or extent changes on append.
	zeroFill bool
}

// Hooks are failpoints at the durability boundaries, like etcd's. nil means
// no fault.
type Hooks struct {
	// Write is called before each write of p to a segment (segment headers
	// included). If it returns an error, only p[:keep] is written
	// (simulating a short or torn write) and the write fails with that error.
	Write func(p []byte) (keep int, err error)
	// Sync is called before each file, mapping or directory sync; an error
	// fails the sync.
	Sync func() error
}

// Validate checks the options and names the bad field. Errors wrap
// ErrBadOptions.
func (o Options) Validate() error {
	switch o.Codec {
	case "", "binary", "text", "jsonl":
	default:
		return fmt.Errorf("%w: Codec %q: want binary, text or jsonl", ErrBadOptions, o.Codec)
	}
	switch o.Storage {
	case "", "file", "mmap":
	default:
		return fmt.Errorf("%w: Storage %q: want file or mmap", ErrBadOptions, o.Storage)
	}
	if o.SegmentSize < 0 || (o.SegmentSize > 0 && o.SegmentSize < 4*HeaderSize) {
		return fmt.Errorf("%w: SegmentSize %d: want 0 (default) or at least %d", ErrBadOptions, o.SegmentSize, 4*HeaderSize)
	}
	if o.SegmentSize > 1<<40 {
		return fmt.Errorf("%w: SegmentSize %d: at most 1 TiB", ErrBadOptions, o.SegmentSize)
	}
	if o.Preallocate && o.Storage == "mmap" {
		return fmt.Errorf("%w: Preallocate is for file storage (mmap always preallocates)", ErrBadOptions)
	}
	return nil
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	if o.Codec == "" {
		o.Codec = "binary"
	}
	if o.Storage == "" {
		o.Storage = "file"
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = fsys.OS
	}
	return o
}
