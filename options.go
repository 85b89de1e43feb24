package rewardpool

import (
	"fmt"
	"github.com/rewardpool/rewardpool/journal"
	"log/slog"
	"time"

	"github.com/rewardpool/rewardpool/gacha"
	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/pool"
	"github.com/rewardpool/rewardpool/wal"
)

// Durability says when a draw is acknowledged relative to the fsync that
// makes it survive power loss.
type Durability string

const (
	// DurabilityAlways fsyncs every batch before answering anyone in it.
	// An acknowledged draw survives kill -9 and power loss. The default.
	DurabilityAlways Durability = "always"
	// DurabilityInterval writes every batch before answering, and fsyncs at
	// most every SyncInterval. An acknowledged draw survives kill -9 (it is
	// in the page cache) but a power loss can drop up to SyncInterval of them.
	DurabilityInterval Durability = "interval"
	// DurabilityNone never fsyncs except at Close and before snapshots.
	// For tests and benchmarks only.
	DurabilityNone Durability = "none"
)

// Item is one entry of a pool's catalog: ID, remaining Quantity (or
// Unlimited) and Weight in units of 1/WeightUnit.
type Item = pool.Item

const (
	// Unlimited is the Quantity of an item that never runs out.
	Unlimited = pool.Unlimited
	// WeightUnit is the weight of 1: weights are integers in millionths, so
	// 2.5 is 2_500_000 and selection never uses floating point.
	WeightUnit = pool.WeightUnit
)

// ParseWeight parses a decimal weight with up to 6 places ("10", "0.25")
// into units of 1/WeightUnit.
func ParseWeight(s string) (uint64, error) { return pool.ParseWeight(s) }

// Options configure an Engine. The zero value of every field means its
// default, so Options{Items: ...} is a complete configuration.
type Options struct {
	// Replica opens the engine as a read-only follower of another engine's
	// log: Draw and item changes return ErrReplica, records arrive through
	// Apply, and Promote makes it a primary. Items are ignored: the catalog
	// comes from the primary's records (or a snapshot copied from it).
	// A directory whose log holds an EPOCH record written by a promotion is
	// still opened in the role Replica says: the caller decides the role.
	Replica bool

	// Journal, if set, is the node's commit journal, shared by every pool
	// on the node: under DurabilityAlways a batch is durable once the
	// journal has it (one fsync covers every pool committing at that
	// moment), and the pool's own log is fsynced only for snapshots,
	// checkpoints and Close. Open replays the pool's part of the journal
	// into its log first. Once a directory was used with a journal, open it
	// with the same journal until it closes cleanly. See package journal.
	Journal *journal.Journal
	// JournalName names the pool in the journal; default: the base name of
	// the engine's directory. It must be unique among the journal's pools.
	JournalName string

	// Items seed the catalog the first time the directory is opened. Once
	// the directory holds state, Items is ignored: the catalog lives in the
	// snapshots and the log and changes through AddItem, SetItem, RemoveItem.
	Items []Item

	// Rules are the pool's player rules (tiers, pity, per-user and item
	// caps, window). The rules in force are state, kept in the log (a RULES
	// record) and snapshots: when Rules is set and differs from them, Open
	// logs Rules as the pool's new rules (counters of the rules that remain
	// are kept); nil leaves the pool's rules as they are (none for a new
	// pool, or what SetRules set). Invalid rules: ErrBadOptions naming the
	// rule. A replica ignores Rules: it takes its primary's from the log.
	Rules *gacha.Rules
	// Durability is DurabilityAlways by default.
	Durability Durability
	// SyncInterval bounds the fsync delay under DurabilityInterval.
	// Default 10ms.
	SyncInterval time.Duration

	// Codec of new log segments: "binary" (default), "text" or "jsonl".
	Codec string
	// Storage of log segments: "file" (default; blocks are reserved with
	// fallocate a step ahead of the data, so disk use follows data) or
	// "mmap" (each segment reserved whole when created).
	Storage string
	// SegmentSize is the size at which the log starts a new segment.
	// Default 64 MiB.
	SegmentSize int64
	// KeepSegments keeps at least this many of the newest log segments even
	// when snapshots cover them, so replicas can catch up from disk.
	// Default 0: delete what the snapshots cover.
	KeepSegments int
	// KeepBytes keeps the newest log segments until they hold at least this
	// many bytes, even when snapshots cover them. Default 0.
	KeepBytes int64

	// SnapshotEvery, when set, takes a snapshot after this many log
	// records (the schedule before SnapshotLogPercent existed). Default 0:
	// snapshots follow SnapshotLogPercent and SnapshotMinInterval. A
	// snapshot is also taken at Close.
	SnapshotEvery uint64
	// SnapshotLogPercent: a snapshot starts once the log written since the
	// last one reaches this percentage of that snapshot's size. A snapshot
	// rewrites the whole catalog (20 MB at a million items), so a schedule
	// by records would spend most of the disk on snapshots for big
	// catalogs; by bytes, snapshots cost at most 100/SnapshotLogPercent
	// times the log, and recovery replays about that much log. Default 100.
	SnapshotLogPercent int
	// SnapshotMinInterval is the least time between the starts of two
	// snapshots under SnapshotLogPercent (the first counts from the first
	// write after Open). Default 1s.
	SnapshotMinInterval time.Duration
	// IdempotencyWindow is how many idempotency keys are remembered.
	// Default 1,000,000.
	IdempotencyWindow int
	// IdempotencyBytes bounds the memory of the remembered keys and their
	// answers (an estimate: the key, 18 bytes per draw and 200 bytes per
	// key, set from the heap measured in BENCHMARKS.md). The oldest keys are
	// forgotten once either bound is reached. It must hold at least one
	// answer of MaxDrawCount draws. Every snapshot holds the window too.
	// Default 256 MiB.
	IdempotencyBytes int64

	// MailboxSize bounds the queue of requests waiting for the writer.
	// Default 4096.
	MailboxSize int
	// GatherWait is how long, at most, a batch under DurabilityAlways waits
	// for the callers the last commit answered to send again, so that one
	// fsync covers them all instead of every other one (see gather in
	// writer.go). The wait yields rather than sleeps. 0 (default): no wait.
	// Negative: half the recent commit time, at most 2 ms. In-process
	// callers gain most (16 callers: the draw's p50 from 2.3 to 1.3 fsyncs,
	// BenchmarkDrawLatencyInFsyncs); behind the network on 2 cores the
	// yielding costs the transport more CPU than it saves (BENCHMARKS.md),
	// hence off by default.
	GatherWait time.Duration

	// MaxBatch bounds the requests the writer takes into one group commit.
	// Default 1024.
	MaxBatch int
	// MaxDrawCount bounds Count of one draw request. Default 10,000.
	MaxDrawCount int

	// Seed, when set, makes selection deterministic. For tests only: with a
	// known seed anyone can predict the draws. Default: crypto/rand.
	Seed *[32]byte

	// Logger receives recovery, snapshot and failure messages.
	// Default slog.Default().
	Logger *slog.Logger

	// Committed, when set, is called on the writer goroutine with every
	// batch of records once it is durable, in log order: under
	// DurabilityAlways right after the batch's fsync, under
	// DurabilityInterval after the fsync that covers it (several batches
	// at once), under DurabilityNone (which promises nothing) once written.
	// It must not block and must not keep recs: copy what it needs.
	// The replication streamer hangs off this hook.
	Committed func(recs []wal.Record)

	// Observer receives per-batch measurements (batch sizes, fsync
	// latency, snapshot durations) for metrics. Default: none.
	Observer Observer

	// walHooks inject write and sync failures: a test seam, set by this
	// package's tests or through internal/failpoint, never an option.
	walHooks wal.Hooks

	// clock is the writer's clock for rules that depend on time (daily
	// caps, the window, releases); time.Now unless a test fakes it. It is
	// read once per draw request of a pool with rules, and that time is
	// logged with the request's players' draws.
	clock func() time.Time
	// fs is the file system the data directory lives on: the operating
	// system's unless a test of this package puts it on the power-loss
	// simulator. Unexported: it is a test seam, not an option.
	fs fsys.FS
}

const (
	defaultSyncInterval        = 10 * time.Millisecond
	defaultSnapshotLogPercent  = 100
	defaultSnapshotMinInterval = time.Second
	defaultIdempotencyWindow   = 1_000_000
	defaultIdempotencyBytes    = 256 << 20
	defaultMailboxSize         = 4096
	defaultMaxBatch            = 1024
	defaultMaxDrawCount        = 10_000
	// maxKeyLen bounds an idempotency key; keys live in memory and in every
	// snapshot, so they must stay small.
	maxKeyLen = 256
	// maxBatchDraws stops the writer draining more requests once a batch
	// holds this many draws, bounding the batch buffer and the latency of
	// the first caller in it.
	maxBatchDraws = 1 << 16
)

// withDefaults returns o with every zero field set to its default, or an
// error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrBadOptions, field, v, why)
	}
	switch o.Durability {
	case "":
		o.Durability = DurabilityAlways
	case DurabilityAlways, DurabilityInterval, DurabilityNone:
	default:
		return o, bad("Durability", o.Durability, "want always, interval or none")
	}
	if o.SyncInterval < 0 {
		return o, bad("SyncInterval", o.SyncInterval, "must not be negative")
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = defaultSyncInterval
	}
	if o.SnapshotLogPercent < 0 {
		return o, bad("SnapshotLogPercent", o.SnapshotLogPercent, "must not be negative")
	}
	if o.SnapshotLogPercent == 0 {
		o.SnapshotLogPercent = defaultSnapshotLogPercent
	}
	if o.SnapshotMinInterval < 0 {
		return o, bad("SnapshotMinInterval", o.SnapshotMinInterval, "must not be negative")
	}
	if o.SnapshotMinInterval == 0 {
		o.SnapshotMinInterval = defaultSnapshotMinInterval
	}
	if o.IdempotencyWindow < 0 {
		return o, bad("IdempotencyWindow", o.IdempotencyWindow, "must not be negative")
	}
	if o.IdempotencyWindow == 0 {
		o.IdempotencyWindow = defaultIdempotencyWindow
	}
	if o.MailboxSize < 0 {
		return o, bad("MailboxSize", o.MailboxSize, "must not be negative")
	}
	if o.MailboxSize == 0 {
		o.MailboxSize = defaultMailboxSize
	}
	if o.MaxBatch < 0 {
		return o, bad("MaxBatch", o.MaxBatch, "must not be negative")
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.MaxDrawCount < 0 || o.MaxDrawCount > maxBatchDraws {
		return o, bad("MaxDrawCount", o.MaxDrawCount, fmt.Sprintf("must be in 0..%d", maxBatchDraws))
	}
	if o.MaxDrawCount == 0 {
		o.MaxDrawCount = defaultMaxDrawCount
	}
	if o.IdempotencyBytes < 0 {
		return o, bad("IdempotencyBytes", o.IdempotencyBytes, "must not be negative")
	}
	if o.IdempotencyBytes == 0 {
		o.IdempotencyBytes = defaultIdempotencyBytes
	}
	if least := answerCost(maxKeyLen, o.MaxDrawCount); o.IdempotencyBytes < least {
		// Smaller, and the newest answer could be forgotten at once: a
		// retry right after a large draw would draw again.
		return o, bad("IdempotencyBytes", o.IdempotencyBytes, fmt.Sprintf(
			"must be at least %d to hold one answer of MaxDrawCount=%d draws under a %d-byte key", least, o.MaxDrawCount, maxKeyLen))
	}
	if o.KeepSegments < 0 {
		return o, bad("KeepSegments", o.KeepSegments, "must not be negative")
	}
	if o.KeepBytes < 0 {
		return o, bad("KeepBytes", o.KeepBytes, "must not be negative")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.fs == nil {
		o.fs = fsys.OS
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if err := o.walOptions().Validate(); err != nil {
		return o, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	for i, it := range o.Items {
		if err := pool.ValidateItem(it); err != nil {
			return o, fmt.Errorf("%w: Items[%d]: %w", ErrBadOptions, i, err)
		}
	}
	return o, nil
}

func (o Options) walOptions() wal.Options {
	return wal.Options{
		Codec:       o.Codec,
		Storage:     o.Storage,
		SegmentSize: o.SegmentSize,
		// Reserving blocks ahead of the data spares most fdatasyncs the
		// block allocation and size update: about a quarter of their latency
		// here. The reservation grows with the data (wal.Options.Preallocate).
		Preallocate: o.Storage != "mmap",
		Logger:      o.Logger,
		Hooks:       o.walHooks,
		FS:          o.fs,
	}
}

// Observer receives the engine's measurements. Its methods run on the
// writer goroutine (Snapshot on the snapshot goroutine), so they must be
// cheap and must never block: a histogram observation, not a network call.
type Observer interface {
	// Batch is called after each group commit that wrote records.
	Batch(requests, draws, records int)
	// Sync is called after each fsync of the log.
	Sync(took time.Duration, err error)
	// Snapshot is called after each snapshot attempt.
	Snapshot(seq uint64, took time.Duration, err error)
}
