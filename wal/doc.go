// Package wal is the write-ahead log of one reward pool.
//
// One writer goroutine (the engine) appends a batch of records with Append
// and makes it durable with Sync (group commit: one write and one sync per
// batch). At Open the log finds its end and cuts a torn tail; recovery and
// the streamer read records back with Scan. This comment is the design
// document: formats, and for each operation why it is crash-safe.
//
// # Files
//
// A log is a directory of segments named by the seq of their first record,
// 20 digits plus ".wal" (00000000000000000017.wal), so `ls` order is log
// order. Seqs are consecutive across the whole log; a new segment starts at
// the first seq of its first batch. Other files are ignored: LOCK (an
// flock held while the log is open), <name>.broken (kept by Repair) and
// *.tmp (a segment or copy being built; deleted at Open).
//
// # Segment header
//
// The first HeaderSize (128) bytes are a text line for every codec:
//
//	RPWAL v1 binary first=00000000000000000017 epoch=1 crc=1a2b3c4d<spaces>\n
//
// codec (binary, text, jsonl), first seq, epoch of the first record, and a
// CRC32C (Castagnoli) of the bytes before " crc=". Readers decode each
// segment with the codec its header names, so changing Options.Codec only
// starts a new segment. The header's first seq must match the file name.
//
// # Records
//
// Every record carries its seq, epoch, Commit flag and a CRC32C, in one of
// three codecs (details on each codec type):
//
//   - binary (default): uvarint body length, body, CRC32C of length+body.
//     The body is a kind byte (kind, commit and "epoch changed" bits), seq as
//     a delta from the previous record in the segment, the epoch only when it
//     changes, and the kind's fields, with request ids as deltas from the
//     previous draw. Deltas restart at each segment, so a segment decodes
//     alone from its header. A draw from a 1,000,000-item catalog is 11 bytes.
//     Draws store the catalog slot (Item) only; decoding gives ItemID "".
//   - text: one line, the canonical Record.String() form then a tab and
//     "seq epoch C|- crc": `DRAW 101 gold	17 1 C 9f0a12bc`. Decoding gives
//     ItemID and Item -1.
//   - jsonl: one JSON object per line ending in "crc"; Item -1 as for text.
//
// A zero byte where a record would start means "end of data": that is how
// a preallocated (mmap) segment's zero-filled tail reads, for every codec.
// Records are at most 1 MiB, so a damaged length cannot make a reader
// buffer a whole segment.
//
// Batches: the last record of each batch has Commit set. A batch is never
// split across segments; it is written with one write call.
//
// # Storages
//
//   - file: pwrite at the end of the data, fdatasync. Optional fallocate
//     (Options.Preallocate) so appends do not allocate blocks: the
//     reservation runs ahead of the data in steps (64 KiB, doubling up to
//     4 MiB) rather than a whole SegmentSize at creation, so disk use
//     follows data; a batch that crosses it is preceded by one fallocate.
//   - mmap: the segment is reserved with fallocate to SegmentSize (or to fit an oversized
//     batch) before it is renamed into place, mapped shared, written with
//     copy and synced with msync(MS_SYNC) over the page-aligned dirty range.
//
// Both leave the same bytes on disk (plus zeros), so either opens a log
// written by the other.
//
// # Why each operation is crash-safe
//
// Assumptions: a sector write is not atomic and a crash may leave any
// prefix of unsynced writes, with holes reading as zeros; fsync/fdatasync
// and msync(MS_SYNC) return only when the data is on stable storage; a
// create, rename or remove is durable only after the directory is fsync'ed;
// a failed fsync may have dropped the dirty pages (so it is never retried).
//
// Append writes the encoded batch after the last record. Nothing is
// promised until Sync returns, and the engine replies only after that.
// Because the Commit record is the last of the batch, a crash mid-write
// leaves at most a torn batch at the end of the last segment, which Open
// removes whole (batches are atomic).
//
// Sync is fdatasync or msync. On failure the log is poisoned: every later
// Append and Sync returns ErrPoisoned until the log is reopened, and the
// reopen decides from what is actually on disk.
//
// Rotation (before a batch that would not fit) first syncs the active
// segment, so a later segment exists only when all earlier ones are
// durable: only the last segment can have a torn tail. (Open fsyncs the
// segment it continues for the same reason.) The new segment is
// built as <name>.tmp (extended, header written, fsync'ed), renamed into
// place, and the directory fsync'ed. A crash leaves either no new segment
// or one with a valid header.
//
// Open checks every header, then reads the whole last segment and tells a
// torn write from damage (next section). A torn tail is cut (file:
// truncated; mmap: zeroed and msync'ed) with a warning naming the segment,
// offset and bytes dropped; damage is a *CorruptError naming segment,
// offset and seq, and start-up stops. A last segment left with no committed
// record is removed if an earlier one exists. Then Open fsyncs the active
// segment and the directory: what it read may be only in the page cache
// (written before a kill -9, or left there by an fsync that failed), and a
// later segment must never become durable on top of a tail that is not.
// Earlier segments are checked lazily, by Scan.
//
// # Torn or damaged
//
// The engine answers a batch only after the fsync that makes all of it
// durable, and writes the next batch only after that. So under
// DurabilityAlways only the last batch can be unfinished, and it was never
// acknowledged: cutting it loses nothing anyone was told. A complete batch
// that reads back wrong was acknowledged: cutting it would silently lose
// draws and later reuse their request ids, so it must stop start-up.
//
// The assumptions, as the power-loss simulator (internal/fsys/sim) models
// them: a power cut keeps or loses each 512-byte sector of an unsynced
// write whole, in any order; bytes never written read as zeros (segments
// are preallocated or extended, never recycled); a file's size comes back
// synced or current. A kill -9 leaves a prefix of a write(2); the mmap
// storage stores a batch's first byte last, so a copy it interrupts always
// starts with a zero. Under these, the first damaged record after the last
// commit record is torn when
//
//   - it is cut short by the end of the file, or its data ends inside it
//     with only zeros after (a write's prefix);
//   - a zero sits where the batch after the last commit record starts, with
//     data after it (an mmap copy interrupted in any byte order);
//   - some sector of it, from a 512-byte boundary, is all zeros (a sector
//     the power cut lost), wherever in the batch that is: the zeroed sector
//     in the middle of a 64 KiB batch is torn as surely as a missing end;
//
// and damaged otherwise: a checksum that fails over bytes that are all
// there (a flipped bit), a record whose checksum holds but whose seq is
// wrong, a bad header. Side by side:
//
//   - etcd (wal/decoder.go isTornEntry) calls the last entry torn when one
//     of its sector-sized chunks is all zeros, and truncates there; other
//     checksum failures are errors. We take the same zero-sector rule, add
//     the write-prefix and mmap rules, and apply it to the last batch, not
//     only the last entry (our batches are atomic).
//   - hashicorp/raft-wal closes each batch with a commit frame carrying a
//     checksum of the batch and drops everything after the last valid
//     commit, torn or flipped alike. That can silently drop an acknowledged
//     batch whose bytes rotted; we refuse instead and name the place.
//
// A flipped framing byte (a binary length, a text or jsonl newline) makes a
// whole record reach into the zeros after the data, which looks like a
// write's prefix; so before calling a record torn, Open checks whether it
// decodes with another value in its length byte, or with a newline before
// the zeros: if so it is whole, and damaged. Limits, shared with etcd: a
// flipped bit in a record whose checksum ends in a zero byte (1 in 256)
// reads as a prefix; a sector that a disk zeroes inside an older batch of
// the last segment reads as a lost sector, cutting the batches after it. Under DurabilityInterval and
// DurabilityNone batches are answered before their fsync, so a cut tail
// may hold acknowledged draws: the engine then continues request ids
// above its ceiling (see the engine's IDENTITY file), so none is reused.
//
// Scan reads segment files with plain reads, up to the end of the data as
// of the call, so it may run on another goroutine during appends. A seq
// before the oldest segment, a hole between segments, or a segment deleted
// during the scan is ErrGap; a damaged record is a *CorruptError.
//
// DeleteBefore removes whole sealed segments, oldest first, then fsyncs
// the directory; a crash in between leaves a shorter prefix, still
// contiguous.
//
// Repair (offline) scans everything and cuts the log at the first damage:
// the damaged segment is copied to <name>.broken (temp file, fsync, rename,
// fsync dir) before it is truncated back to its last Commit record, and
// later segments are renamed to <name>.broken, then the directory is
// fsynced. It reports every record it removed that still decodes (line
// codecs skip a damaged line and read on; binary records after damage in
// the same segment cannot be trusted, their deltas lost) and the bytes it
// could not read. PlanRepair reports the same without changing anything.
// The engine's RepairLog raises its id floors before calling Repair, so a
// repair interrupted by a crash never lets an id be reused.
//
// # The file system seam
//
// Every file operation goes through Options.FS (internal/fsys): the
// operating system's by default, the power-loss simulator in tests. Every
// create, rename and remove that a recovery decision depends on is
// followed by an fsync of its directory (fsys.Rename, fsys.Remove,
// fsys.MkdirAll, fsys.WriteFileAtomic). The mmap storage needs a real file
// descriptor and runs on the operating system's file system only; it
// reserves a segment's blocks with fallocate, so a full disk is an ENOSPC
// error at rotation, never a SIGBUS in the middle of a copy.
package wal
