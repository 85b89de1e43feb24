package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/pool"
)

// ErrInvalid is wrapped by every error Load, Parse and Validate return for
// a bad configuration (as opposed to a file that cannot be read), so
// callers can tell the two apart with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// Defaults. Each is documented on the Config field it fills.
const (
	DefaultListen     = "127.0.0.1:7070"
	DefaultDataDir    = "./data"
	DefaultDurability = "always"
	// JournalDir is the node journal's directory under data_dir, a name
	// no pool may take.
	JournalDir                 = ".journal"
	DefaultSyncInterval        = Duration(10 * time.Millisecond)
	DefaultSnapshotLogPercent  = 100
	DefaultSnapshotMinInterval = Duration(time.Second)
	DefaultPerItemMaxItems     = 10_000
	DefaultIdempotencyWindow   = 1_000_000
	DefaultIdempotencyBytes    = 256 * MiB
	DefaultCodec               = "binary"
	DefaultStorage             = "file"
	DefaultSegmentSize         = 64 * MiB
	DefaultMaxDrawCount        = 10_000
	DefaultMaxBodyBytes        = 1 * MiB
	DefaultShutdownTimeout     = Duration(10 * time.Second)
	DefaultMaxConnections      = 4096
	DefaultHeaderTimeout       = Duration(10 * time.Second)
	DefaultBodyTimeout         = Duration(30 * time.Second)
	DefaultIdleTimeout         = Duration(2 * time.Minute)
	DefaultHandshakeTimeout    = Duration(10 * time.Second)
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "text"
	// DemoPool is the name of the built-in pool a config without pools gets.
	DemoPool = "default"
)

// Replica readiness defaults (replication.ready_max_lag_records, ready_max_lag).
const (
	DefaultReadyMaxLagRecords = 10_000
	DefaultReadyMaxLag        = Duration(10 * time.Second)
)

// Bounds enforced by Validate.
const (
	MaxDrawCountLimit = 10_000  // limits.max_draw_count at most this
	MinSegmentSize    = 4 * KiB // wal.segment_size at least this
	MaxSegmentSize    = 1 * TiB // wal.segment_size at most this (the WAL's own bound)
	maxPoolNameLen    = 64      // pool names become directory names
)

// MinIdempotencyBytes is the least idempotency_window_bytes: one answer of
// MaxDrawCountLimit draws under a 256-byte key must always fit (the
// engine's own minimum for that is about 180KiB).
const MinIdempotencyBytes = 1 * MiB

// Config is the whole server configuration, read from YAML (JSON is
// accepted too: YAML reads it). A zero field is not a default: Load and
// Parse start from Default's values and overwrite only what the file sets,
// and Validate rejects zeros where they make no sense.
type Config struct {
	// Listen is the host:port that serves both gRPC (h2c, or TLS when
	// configured) and HTTP/JSON. Default "127.0.0.1:7070". Port 0 picks a
	// free port; an empty host listens on every interface.
	Listen string `yaml:"listen"`
	// DataDir holds one directory per pool, <data_dir>/<pool name>, with
	// its snapshots and WAL. Default "./data". Relative paths (here and in
	// tls) are relative to the server's working directory.
	DataDir string `yaml:"data_dir"`
	// Durability is when a draw is acknowledged relative to its fsync:
	// "always" (default: fsync before answering), "interval" (write before
	// answering, fsync at most every sync_interval; a power loss can drop
	// up to that much) or "none" (tests and benchmarks only).
	Durability string `yaml:"durability"`
	// GroupCommit is what one fsync covers under durability "always":
	// "node" (default) commits every pool's batches through one journal in
	// <data_dir>/.journal, so N pools drawing at once pay about one fsync,
	// not N; "pool" has each pool fsync its own log. See package journal.
	GroupCommit string `yaml:"group_commit"`
	// SyncInterval bounds the fsync delay under durability "interval"
	// (ignored otherwise). Default 10ms. Written like "5ms" or "1s".
	SyncInterval Duration `yaml:"sync_interval"`
	// SnapshotEvery, when set, takes a snapshot of a pool after this many
	// WAL records instead of following snapshot_log_percent. Default unset
	// (0): a snapshot writes the whole catalog, so at a million items a
	// schedule by records spends more on snapshots than on the log.
	SnapshotEvery uint64 `yaml:"snapshot_every"`
	// SnapshotLogPercent starts a snapshot once the WAL written since the
	// last one reaches this percentage of that snapshot's size: snapshots
	// then cost at most 100/percent times the log, and recovery replays
	// about that much. Default 100.
	SnapshotLogPercent int `yaml:"snapshot_log_percent"`
	// SnapshotMinInterval is the least time between two snapshots of a
	// pool under snapshot_log_percent. Default 1s.
	SnapshotMinInterval Duration `yaml:"snapshot_min_interval"`
	// IdempotencyWindow is how many idempotency keys each pool remembers.
	// Default 1000000.
	IdempotencyWindow int `yaml:"idempotency_window"`
	// IdempotencyBytes bounds the memory (and snapshot share) of each
	// pool's remembered keys and answers, like "256MiB" (default): a key
	// holds up to limits.max_draw_count draws, so the count alone does not
	// bound it. The oldest keys are forgotten once either bound is reached.
	// At least 1MiB.
	IdempotencyBytes ByteSize `yaml:"idempotency_window_bytes"`
	// WAL configures the write-ahead log of every pool.
	WAL WALConfig `yaml:"wal"`
	// Limits bound what one request may ask for.
	Limits Limits `yaml:"limits"`
	// Connections bounds how many connections are open and how long a
	// slow or idle one may hold its place.
	Connections Connections `yaml:"connections"`
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on admin calls (item changes). Default empty: admin calls are open.
	AdminToken string `yaml:"admin_token"`
	// ClientToken, when set, is required on draws and reads; the admin
	// token is accepted there too. Default empty: draws and reads are open.
	ClientToken string `yaml:"client_token"`
	// TLS serves the port over TLS when both files are set. Default off.
	TLS TLSConfig `yaml:"tls"`
	// ShutdownTimeout bounds the graceful stop on SIGINT/SIGTERM.
	// Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Log configures the structured log on stderr.
	Log LogConfig `yaml:"log"`
	// ReplicaOf, when set (host:port of another rewardpool server), starts
	// this server as a read-only replica of that primary: its pools are the
	// primary's (the pools list below is ignored), it refuses draws and
	// admin writes, and it follows the primary's log until promoted.
	// Default empty: a primary. "serve --replica-of" overrides it.
	ReplicaOf string `yaml:"replica_of"`
	// Replication configures log streaming to and from replicas.
	Replication ReplicationConfig `yaml:"replication"`
	// Metrics configures /metrics.
	Metrics MetricsConfig `yaml:"metrics"`
	// Pools are seeded from this list the first time their directory is
	// created; afterwards their catalog lives in the data directory and
	// changes through the admin API. A config without pools (or with an
	// empty list) gets the built-in demo pool "default" (see Default).
	Pools []Pool `yaml:"pools"`

	// src remembers where each value came from, for error messages. nil
	// for a Config not read from a file.
	src *source
}

// WALConfig configures the write-ahead log.
type WALConfig struct {
	// Codec of new segments: "binary" (default, compact), "text" (one
	// readable line per record) or "jsonl". Existing segments keep theirs.
	Codec string `yaml:"codec"`
	// Storage of segments: "file" (default: pwrite + fdatasync) or "mmap".
	Storage string `yaml:"storage"`
	// SegmentSize is the size at which a new segment starts, like "64MiB"
	// (default), "512KiB" or a plain byte count. At least 4KiB.
	SegmentSize ByteSize `yaml:"segment_size"`
	// KeepSegments keeps at least this many of the newest segments even
	// when snapshots cover them. Default 0: delete what snapshots cover.
	KeepSegments int `yaml:"keep_segments"`
	// KeepBytes keeps the newest segments until they hold at least this
	// much disk, even when snapshots cover them (e.g. "1GiB"). Default 0.
	// Segments kept = max of both rules; a replica further behind than
	// what is kept bootstraps from a snapshot.
	KeepBytes ByteSize `yaml:"keep_bytes"`
}

// MetricsConfig configures /metrics.
type MetricsConfig struct {
	// PerItemMaxItems is the largest catalog whose draws and remaining
	// quantities get a series per item. A bigger pool's draws are counted
	// per pool (item="") and its remaining quantities are not exported:
	// a series per item of a million-item catalog would cost more than the
	// pool. Default 10000; 0: never per item.
	PerItemMaxItems int `yaml:"per_item_max_items"`
}

// ReplicationConfig configures replication.
type ReplicationConfig struct {
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// the Replication service's StreamWAL and GetSnapshot (the admin token
	// is accepted too), and a replica sends it to its primary. Default
	// empty: those calls need the admin token when one is set, else none,
	// and a replica sends its own admin token instead.
	Token string `yaml:"token"`
	// MinSyncReplicas is how many replicas must hold a batch durably
	// before the primary answers its draws and item changes. 0 (default):
	// asynchronous, so a promoted replica may miss the draws of the last
	// moments before the primary failed. N >= 1: a promoted replica that
	// acknowledged holds every answered draw; a draw no replica confirms
	// within 5s gets UNAVAILABLE although it is durable on the primary
	// (a retry with the same idempotency key returns it). At most 100.
	MinSyncReplicas int `yaml:"min_sync_replicas"`
	// CAFile, on a replica, is a PEM file of the CA that signed the
	// primary's TLS certificate: when set the replica connects over TLS.
	// Default empty: plaintext (h2c).
	CAFile string `yaml:"ca_file"`
	// LogRecords writes every committed log record as one structured log
	// line (msg "wal record": seq, epoch, kind, request_id, item...), in
	// order: an audit trail and the simplest sink. Default false.
	LogRecords bool `yaml:"log_records"`
	// ReadyMaxLagRecords and ReadyMaxLag bound how far a replica may trail
	// its primary and still answer /readyz with 200: records it has heard
	// of but not applied, and how long it has not been caught up. Past
	// either bound (or while it cannot reach its primary) it is unready.
	// Defaults 10000 records and 10s.
	ReadyMaxLagRecords uint64   `yaml:"ready_max_lag_records"`
	ReadyMaxLag        Duration `yaml:"ready_max_lag"`
}

// Limits bound requests.
type Limits struct {
	// MaxDrawCount is the largest count of one draw request. Default
	// 10000, at most 10000.
	MaxDrawCount int `yaml:"max_draw_count"`
	// MaxBodyBytes is the largest request body (HTTP) or message (gRPC).
	// Default 1MiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
}

// Connections bounds client connections, so slow or stalled clients cannot
// hold the node's file descriptors and memory: every phase of a connection
// has a deadline, and the number open at once has a cap.
type Connections struct {
	// Max is how many connections (HTTP, gRPC and replication together)
	// may be open at once; further ones wait in the kernel's accept queue
	// until a slot frees (the timeouts below free the slots of stalled
	// clients). Default 4096; keep it below the open-file limit.
	Max int `yaml:"max"`
	// HandshakeTimeout is how long a new plaintext connection has to show
	// what it is: its first bytes, and for HTTP/2 without TLS (h2c: gRPC,
	// or curl --http2-prior-knowledge) the preface, settings and first
	// request headers. Default 10s.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// HeaderTimeout is how long an HTTP/1 client has to send a request's
	// headers; with TLS it also bounds the TLS handshake. Default 10s.
	HeaderTimeout Duration `yaml:"header_timeout"`
	// BodyTimeout is how long an HTTP client has to send a request's body
	// once its headers are in; then it gets 408 and the connection is
	// closed. Default 30s.
	BodyTimeout Duration `yaml:"body_timeout"`
	// IdleTimeout closes a keep-alive HTTP connection, or a gRPC connection
	// without calls, after this long without a request. Default 2m.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// TLSConfig names a certificate and its key (PEM). Both or neither.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// LogConfig configures log/slog output.
type LogConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default, logfmt-like) or json.
	Format string `yaml:"format"`
}

// SlogLevel returns Level as a slog.Level (info for anything unknown;
// Validate rejects unknown levels).
func (l LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Pool is one named pool and the catalog that seeds it.
type Pool struct {
	// Name is 1 to 64 of A-Z a-z 0-9 _ . - (not "." or ".."): it becomes
	// the directory <data_dir>/<name> and the {pool} of API paths.
	Name string `yaml:"name"`
	// Items seed the catalog. May be empty: items can be added later
	// through the admin API.
	Items []Item `yaml:"items"`
	// Rules are the pool's player rules (pity, per-user and item caps, a
	// window); nil: none. See README "Gacha rules".
	Rules *Rules `yaml:"rules"`
}

// Item is one catalog entry. All three fields are required.
type Item struct {
	// ID is non-empty, at most 256 bytes, without whitespace, and unique
	// within its pool.
	ID string `yaml:"id"`
	// Quantity is the initial stock, or -1 for unlimited.
	Quantity int64 `yaml:"quantity"`
	// Weight is the relative chance, a plain decimal with at most 6
	// places ("10", "0.25"), greater than 0 and at most 1000000.
	Weight Weight `yaml:"weight"`
	// Tier is an optional label ("ssr") that pity rules name; Featured
	// marks the item a featured guarantee gives.
	Tier     string `yaml:"tier"`
	Featured bool   `yaml:"featured"`
	// Release paces a limited item's stock: Amount units drawable at the
	// rules' window start (without one: when the rules are first logged)
	// and Amount more every Every (README "Gacha rules").
	Release *Release `yaml:"release"`
}

// Default returns a configuration with every default and the built-in demo
// pool "default": diamond ×100 weight 10, gold ×1000 weight 20, unlimited
// mud weight 70.
func Default() *Config {
	c := defaults()
	c.Pools = DemoPools()
	return c
}

// DemoPools returns the built-in demo pool list (a fresh copy).
func DemoPools() []Pool {
	return []Pool{{
		Name: DemoPool,
		Items: []Item{
			{ID: "diamond", Quantity: 100, Weight: 10 * pool.WeightUnit},
			{ID: "gold", Quantity: 1000, Weight: 20 * pool.WeightUnit},
			{ID: "mud", Quantity: pool.Unlimited, Weight: 70 * pool.WeightUnit},
		},
	}}
}

// defaults is Default without pools.
func defaults() *Config {
	return &Config{
		Listen:              DefaultListen,
		DataDir:             DefaultDataDir,
		Durability:          DefaultDurability,
		GroupCommit:         "node",
		SyncInterval:        DefaultSyncInterval,
		SnapshotLogPercent:  DefaultSnapshotLogPercent,
		SnapshotMinInterval: DefaultSnapshotMinInterval,
		IdempotencyWindow:   DefaultIdempotencyWindow,
		IdempotencyBytes:    DefaultIdempotencyBytes,
		WAL: WALConfig{
			Codec:       DefaultCodec,
			Storage:     DefaultStorage,
			SegmentSize: DefaultSegmentSize,
		},
		Limits: Limits{
			MaxDrawCount: DefaultMaxDrawCount,
			MaxBodyBytes: DefaultMaxBodyBytes,
		},
		Connections: Connections{
			Max:              DefaultMaxConnections,
			HandshakeTimeout: DefaultHandshakeTimeout,
			HeaderTimeout:    DefaultHeaderTimeout,
			BodyTimeout:      DefaultBodyTimeout,
			IdleTimeout:      DefaultIdleTimeout,
		},
		ShutdownTimeout: DefaultShutdownTimeout,
		Replication:     ReplicationConfig{ReadyMaxLagRecords: DefaultReadyMaxLagRecords, ReadyMaxLag: DefaultReadyMaxLag},
		Metrics:         MetricsConfig{PerItemMaxItems: DefaultPerItemMaxItems},
		Log:             LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat},
	}
}

// EngineOptions maps the configuration of p to the engine's Options. The
// caller adds Logger, Observer and the like.
func (c *Config) EngineOptions(p Pool) rewardpool.Options {
	items := make([]rewardpool.Item, len(p.Items))
	for i, it := range p.Items {
		items[i] = rewardpool.Item{ID: it.ID, Quantity: it.Quantity, Weight: uint64(it.Weight)}
	}
	return rewardpool.Options{
		Items:               items,
		Rules:               gachaRules(p),
		Durability:          rewardpool.Durability(c.Durability),
		SyncInterval:        time.Duration(c.SyncInterval),
		Codec:               c.WAL.Codec,
		Storage:             c.WAL.Storage,
		SegmentSize:         int64(c.WAL.SegmentSize),
		KeepSegments:        c.WAL.KeepSegments,
		KeepBytes:           int64(c.WAL.KeepBytes),
		SnapshotEvery:       c.SnapshotEvery,
		SnapshotLogPercent:  c.SnapshotLogPercent,
		SnapshotMinInterval: time.Duration(c.SnapshotMinInterval),
		IdempotencyWindow:   c.IdempotencyWindow,
		IdempotencyBytes:    int64(c.IdempotencyBytes),
		MaxDrawCount:        c.Limits.MaxDrawCount,
	}
}

// Pool returns the pool named name.
func (c *Config) Pool(name string) (Pool, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// Weight is an item weight in units of 1/pool.WeightUnit (millionths). In
// YAML it is written as a plain decimal, 10 or 0.25, and read from the
// literal text, never through float64, so 0.1 is exactly 100000 units.
type Weight uint64

// ParseWeight parses a decimal weight ("10", "0.1") into a Weight.
func ParseWeight(s string) (Weight, error) {
	u, err := pool.ParseWeight(s)
	if err != nil {
		return 0, errors.New(strings.TrimPrefix(err.Error(), "pool: "))
	}
	return Weight(u), nil
}

// String formats w as a decimal without trailing zeros.
func (w Weight) String() string { return pool.FormatWeight(uint64(w)) }

// UnmarshalYAML reads the scalar's literal text with pool.ParseWeight.
func (w *Weight) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("weight: want a number like 10 or 0.5, got %s", kindName(n))
	}
	v, err := ParseWeight(n.Value)
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// MarshalYAML writes w as a decimal number.
func (w Weight) MarshalYAML() (any, error) {
	// No tag: the encoder writes it plain, and it reads back as a number.
	return &yaml.Node{Kind: yaml.ScalarNode, Value: w.String()}, nil
}

// Duration is a time.Duration written as "10ms", "2s" or "1m30s".
type Duration time.Duration

// ParseDuration parses s with time.ParseDuration, adding a hint to the
// error of a bare number.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil && s != "0" {
			return 0, fmt.Errorf("duration %q: missing unit (want e.g. \"10ms\" or \"2s\")", s)
		}
		return 0, fmt.Errorf("duration %q: not a duration (want e.g. \"10ms\" or \"2s\")", s)
	}
	return Duration(d), nil
}

// String formats d like time.Duration ("10ms", "1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like \"10ms\", got %s", kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ByteSize is a size in bytes, written as a plain byte count (1048576) or
// an integer with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB,
// GB, TB (powers of 1000), with an optional space: "64MiB", "512 KiB".
type ByteSize int64

// Binary size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var byteUnits = []struct {
	name string
	mul  int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

// ParseByteSize parses "64MiB", "512 KiB", "10MB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	num, mul := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.name) {
			num, mul = strings.TrimSpace(strings.TrimSuffix(num, u.name)), u.mul
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), like \"64MiB\"", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)/mul {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return ByteSize(n * mul), nil
}

// String formats b with the largest binary unit that divides it exactly
// ("64MiB"), or as a plain number of bytes.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:4] {
		if b != 0 && int64(b)%u.mul == 0 {
			return strconv.FormatInt(int64(b)/u.mul, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size like \"64MiB\", got %s", kindName(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML writes b as a size string.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	if n.ShortTag() == "!!null" {
		return "nothing (null)"
	}
	return fmt.Sprintf("%q", n.Value)
}
