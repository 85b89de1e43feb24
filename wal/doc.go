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
//     (Options.Preallocate) so appends do not allocate blocks.
//   - mmap: the segment is extended to SegmentSize (or to fit an oversized
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
// durable: only the last segment can have a torn tail. The new segment is
// built as <name>.tmp (extended, header written, fsync'ed), renamed into
// place, and the directory fsync'ed. A crash leaves either no new segment
// or one with a valid header.
//
// Open checks every header, then reads the whole last segment. Following
// etcd, a damaged record (bad length, checksum, or cut by the end of the
// file) followed only by zero bytes up to the end of the file is a torn
// write: it and everything after the last Commit record are cut (file:
// truncated; mmap: zeroed and msync'ed) with a warning naming the segment,
// offset and bytes dropped. Anything else (a damaged record with data
// after it, a record whose checksum holds but whose seq is wrong, a bad
// header) is corruption: Open returns a *CorruptError. A last segment left
// with no committed record is removed if an earlier one exists. Earlier
// segments are checked lazily, by Scan. Limit: a damaged length field that
// points past the end of the file reads as a torn tail, as in etcd.
//
// A kill -9 in the middle of copying a batch into an mmap'ed segment leaves
// its bytes in whatever order memmove stored them, holes included. So the
// mmap storage stores a batch's first byte (never zero in any codec) after
// all the others, and Open reads a zero where a batch starts, followed by
// data, as that unfinished batch: torn, cut. (A write(2) to a file that is
// killed leaves a prefix, which the rule above already covers.) Limit: a
// corruption that zeroes exactly the first byte of a batch in the last
// segment reads as a torn tail too, dropping the batches after it.
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
// later segments are renamed to <name>.broken. A healthy log is untouched.
package wal
