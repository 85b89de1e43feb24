// Package stream fans the committed records of one pool's write-ahead log
// out to any number of sinks, in log order, without ever blocking the
// engine's writer. It is the first brick of replication (issue 4).
//
// # Data flow
//
//	writer goroutine ──Committed(recs)──▶ bounded queue ──▶ hub goroutine ──▶ ring (last Window records)
//	                        │ full: drop, mark "behind"        │ gap: read [next, X] back from Source
//	                        ▼                                   ▼
//	                 (never waits)                  per-sink goroutine: ring, or Source when evicted
//
// Streamer.Committed is plugged into rewardpool.Options.Committed. It runs on
// the writer goroutine, copies the batch into a pooled buffer and offers it to
// a queue bounded by Options.Buffer records with a non-blocking send. If the
// queue is full the batch is dropped and the streamer is marked "behind up to
// seq X"; it costs the writer an atomic add and a counter either way.
//
// The hub goroutine takes batches from the queue and appends them to an
// in-memory ring of the last Options.Window records. It tracks the next seq
// it needs: a batch that starts after it means batches were dropped, so the
// hub first reads the missing seqs back from the Source (the WAL on disk)
// and only then appends the batch; a batch (or the part of one) it already
// holds is skipped. Seqs are consecutive, so this arithmetic alone rules out
// gaps and duplicates. A drop that no later batch reveals (the writer went
// idle) is caught by the "behind" mark, which wakes the hub to read up to X.
//
// Every sink has its own goroutine and position (the next seq it wants). It
// copies up to Options.MaxBatch records from the ring and calls Sink.Stream.
// A sink whose position fell out of the ring (it is slower than the writer
// by more than Window records) reads from the Source itself until it is back
// inside the ring. A slow sink therefore delays nobody: not the writer, not
// the hub, not the other sinks.
//
// The Source is only ever asked for seqs the streamer has seen handed to
// Committed (or the engine's recovered last seq given to Start), so it never
// returns a record that was written but not yet committed, even though
// wal.Log.Scan can see those.
//
// # Item names
//
// Records handed to Committed by the engine carry both Item (catalog slot)
// and ItemID for draws. Records read back from a binary WAL segment carry
// only Item; ItemID is "" (text and jsonl segments give ItemID and Item -1).
// A sink therefore receives either form for the same kind of record,
// depending on whether it was served from memory or from disk, and must
// accept both: a replica resolves slots with its own catalog, which it
// rebuilds from the same log. Options.Resolve, when set, fills ItemID from
// the slot before a record reaches any sink.
//
// # Sink errors
//
// A sink whose Stream returns an error (or whose catch-up from the Source
// fails, e.g. wal.ErrGap because the segments it needs were deleted) is
// stopped and closed; Stats reports the error until RemoveSink. It never
// receives a record twice: a network subscriber reconnects and adds itself
// again from the seq after the last one it applied.
package stream
