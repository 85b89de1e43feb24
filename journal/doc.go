// Package journal is a node's commit journal: one append-only log shared
// by every pool on the node, so that pools committing at the same moment
// share one write and one fdatasync.
//
// # Why
//
// Each pool has its own write-ahead log (package wal), and under durability
// "always" each used to fsync it per batch. Group commit then only works
// inside a pool: sixteen banners with one player each made sixteen fsyncs
// of one draw, where one banner with sixteen players made one fsync of
// sixteen. Measured on the same disk, sixteen files fdatasynced side by
// side reach about a quarter of the rate of one file fdatasynced for all of
// them, and syncfs(2) or a round of parallel fdatasyncs do not close the
// gap: a device cache flush per file is the cost. So durability has to be
// one file per node.
//
// # How
//
// A pool's writer still decides its batch alone and writes it to its own
// log (no fsync), then calls Commit, which returns once a round holding the
// batch is durable. Rounds are run by the callers themselves: the first
// caller to find no round running leads it; it writes every queued batch
// as one frame, fdatasyncs once, answers the others and passes the lead to
// a caller that queued meanwhile. With one pool the writer does its own
// fsync, as before; with many, one fsync answers them all.
//
// The pools' own logs stay what every other part reads: replay, snapshots,
// replication streams, repair, dump. They are fsynced lazily (before a
// snapshot, at Close, or when the journal asks), and each fsync through a
// seq is recorded in the journal as a checkpoint. A segment of the journal
// is deleted once every pool's checkpoint covers its batches; a pool that
// holds one back is asked to checkpoint. At start-up Redo brings each
// pool's log up to date before the pool reads it: the log is cut just
// before the journal's first batch for the pool (what the log holds beyond
// was written but never acknowledged, or is the same batch again, and may
// have lost sectors since it was never fsynced) and the journal's batches
// are appended and fsynced.
//
// # Frames and torn rounds
//
// A segment is a run of frames, one per round, each starting on a
// 512-byte sector boundary: a round never rewrites a sector an earlier,
// acknowledged round wrote, so a power cut can damage only the last round.
// Segments are zero-filled ahead of use, off the commit path, so an
// fdatasync has no extent metadata to commit. Each frame carries its round
// number and a CRC-32C seeded with the journal's secret SEED, so bytes a
// client chose (a key, a user id) can never pass for a frame. At Open, the first frame that does not check out
// ends the data. In the last segment that is a torn round, cut with a
// warning, unless a valid frame of a later round follows it: rounds are
// written one after another, each only once the one before is durable, so
// a later round proves the bad one was durable once, which is damage, and
// Open refuses (ErrCorrupt). In an earlier segment anything but zeros after
// the last frame is damage.
//
// # What comes next
//
// One log per node is what a replicated log (hashicorp/raft's StoreLogs)
// wants: the journal's rounds are the natural unit to replicate, and pools
// keep their own seqs, request ids and logs on top. Today the journal is
// local only: replicas still follow each pool's log.
//
// # Rules for users
//
// A pool directory used with a journal must be opened with the same
// journal, under the same name, until it closes cleanly (Close detaches
// it): its last acknowledged batches may be only in the journal. Knows
// tells an engine whether the journal can stand for a directory's last
// run under a name. A name is held by one open pool at a time (Claim,
// Release). A journal whose every pool detached deletes its segments at
// Close.
package journal
