// Package rewardpool is an embeddable, durable reward pool: a catalog of
// items with quantities (or unlimited) and relative weights, from which
// draws pick an available item with probability weight / (sum of available
// weights), take one unit, and answer with a unique, strictly increasing
// request id.
//
//	e, err := rewardpool.Open("./data/default", rewardpool.Options{
//		Items: []rewardpool.Item{
//			{ID: "diamond", Quantity: 100, Weight: 10 * rewardpool.WeightUnit},
//			{ID: "mud", Quantity: rewardpool.Unlimited, Weight: 70 * rewardpool.WeightUnit},
//		},
//	})
//	...
//	res, err := e.Draw(ctx, rewardpool.DrawRequest{Count: 3})
//	...
//	err = e.Close() // fsyncs and snapshots
//
// # Promises
//
//   - WAL first: a draw's outcome is in the write-ahead log, and under the
//     default DurabilityAlways fsynced, before Draw returns it.
//   - No over-issue: for every limited item, initial quantity + restocks −
//     successful draws = remaining quantity, across any crash and restart.
//   - Request ids are unique and strictly increasing for the life of the
//     data directory, across crashes, power loss, RepairLog and ReseedLog;
//     a draw that finds the pool empty takes one too.
//   - A used directory is never new again: one whose snapshot and log
//     cannot prove its state fails Open with ErrUnprovable rather than be
//     seeded from Options.Items a second time.
//   - Deterministic replay: the log records outcomes, not random choices, so
//     recovery rebuilds exactly the state that was acknowledged.
//   - Bad input gets an error naming what is wrong and changes nothing.
//
// # How it works
//
// One writer goroutine owns the pool. Callers put requests in a bounded
// mailbox; the writer takes one, drains whatever else is waiting into a
// batch, decides every outcome in memory, encodes the records, appends them
// to the log with one write and one fsync (group commit), and only then
// answers everyone in the batch. If the write or fsync fails, the batch is
// undone in memory and every caller in it gets ErrOutcomeUnknown: the batch
// may still be in the file and come back on reopen, so the caller learns
// the outcome by retrying with the same idempotency key. The engine then
// refuses writes with ErrWAL (not applied) until reopened.
//
// Snapshots are taken once the log written since the last one reaches
// Options.SnapshotLogPercent of its size (at most every
// Options.SnapshotMinInterval; or every Options.SnapshotEvery records when
// set) and at Close, on another goroutine, from a copy of the state. Open
// loads the newest valid snapshot and replays the log after it. Log segments covered by the two
// newest snapshots are deleted unless Options.KeepSegments keeps them.
//
// A data directory holds:
//
//	IDENTITY      created with the pool, durably, once its seed is durable:
//	              the directory was used; the
//	              ceilings of every seq and request id handed out (raised
//	              durably before a record passes them), the floors that
//	              repair and reseed set, and two flags (a durable batch was
//	              written; a run answering before its fsync is open)
//	LOCK          flock held by the open engine
//	wal/          log segments, 20-digit first seq + ".wal" (see package wal)
//	snapshots/    20-digit seq + ".snap" (see package snapshot)
package rewardpool
