package wal

// storage is how the writer puts bytes into the active segment and makes
// them durable. The Log applies Hooks around these calls.
type storage interface {
	// writeAt writes p at off in one call.
	writeAt(p []byte, off int64) error
	// writePartial leaves what a crash in the middle of writeAt(p, off)
	// could leave with only keep bytes stored (the Write failpoint).
	writePartial(p []byte, keep int, off int64)
	// sync makes [from, to) durable (file storage syncs the whole file).
	sync(from, to int64) error
	// capacity is the most bytes the segment can hold without growing.
	capacity() int64
	// reserve makes sure a write ending at end needs no block allocation
	// (file storage with Preallocate; a no-op otherwise).
	reserve(end int64) error
	// grow makes room for n bytes (mmap: an oversized batch in an empty
	// segment).
	grow(n int64) error
	// cut removes everything in [end, dirtyEnd): truncates (file) or zeroes
	// (mmap), then syncs.
	cut(end, dirtyEnd int64) error
	close() error
}
