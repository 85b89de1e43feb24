package config

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/rewardpool/rewardpool/pool"
)

// Validate checks every field and reports every problem at once: the
// result is nil or an errors.Join of *FieldError, one per line, each
// wrapping ErrInvalid. For a Config from Load or Parse, each names the file
// and line of the value at fault, unless the value was changed after
// loading (a command-line override), which Validate notices.
func (c *Config) Validate() error {
	if probs := c.check(); len(probs) > 0 {
		return c.join(probs)
	}
	return nil
}

var poolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// check returns the problems of c, skipping fields whose parse error was
// already reported.
func (c *Config) check() []problem {
	var probs []problem
	bad := func(path string, cur any, format string, args ...any) {
		if c.src.isBad(path) {
			return
		}
		probs = append(probs, problem{path: path, line: c.lineOf(path, cur), text: fmt.Sprintf(format, args...)})
	}
	oneOf := func(path, v string, want ...string) {
		for _, w := range want {
			if v == w {
				return
			}
		}
		bad(path, v, "%s %q: want %s", path, v, orList(want))
	}

	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", c.Listen, "listen %q: want host:port, like 127.0.0.1:7070 or :7070", c.Listen)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("listen", c.Listen, "listen %q: port %q: want a number 0..65535", c.Listen, port)
	}
	if c.DataDir == "" {
		bad("data_dir", c.DataDir, "data_dir: empty (want a directory, like ./data)")
	}
	oneOf("durability", c.Durability, "always", "interval", "none")
	oneOf("group_commit", c.GroupCommit, "node", "pool")
	if c.SyncInterval <= 0 {
		bad("sync_interval", c.SyncInterval, "sync_interval %q: must be greater than zero", c.SyncInterval)
	}
	if _, set := c.src.val("snapshot_every"); set && c.SnapshotEvery == 0 {
		// 0 is the default (unset: snapshots follow snapshot_log_percent),
		// but written in a file it reads like "never": say so.
		bad("snapshot_every", c.SnapshotEvery, "snapshot_every 0: must be at least 1 (leave it out to snapshot by log size)")
	}
	if c.SnapshotLogPercent < 1 {
		bad("snapshot_log_percent", c.SnapshotLogPercent, "snapshot_log_percent %d: must be at least 1", c.SnapshotLogPercent)
	}
	if c.SnapshotMinInterval < 0 {
		bad("snapshot_min_interval", c.SnapshotMinInterval, "snapshot_min_interval %q: must not be negative", c.SnapshotMinInterval)
	}
	if c.IdempotencyWindow < 1 {
		bad("idempotency_window", c.IdempotencyWindow, "idempotency_window %d: must be at least 1", c.IdempotencyWindow)
	}
	if c.IdempotencyBytes < MinIdempotencyBytes {
		bad("idempotency_window_bytes", c.IdempotencyBytes, "idempotency_window_bytes %q: want at least %s (one answer of up to %d draws must fit)",
			c.IdempotencyBytes, MinIdempotencyBytes, MaxDrawCountLimit)
	}

	oneOf("wal.codec", c.WAL.Codec, "binary", "text", "jsonl")
	oneOf("wal.storage", c.WAL.Storage, "file", "mmap")
	if s := c.WAL.SegmentSize; s < MinSegmentSize || s > MaxSegmentSize {
		bad("wal.segment_size", s, "wal.segment_size %q: want %s to %s", s, MinSegmentSize, MaxSegmentSize)
	}
	if c.WAL.KeepBytes < 0 {
		bad("wal.keep_bytes", c.WAL.KeepBytes, "wal.keep_bytes %v: must not be negative", c.WAL.KeepBytes)
	}
	if c.WAL.KeepSegments < 0 {
		bad("wal.keep_segments", c.WAL.KeepSegments, "wal.keep_segments %d: must not be negative", c.WAL.KeepSegments)
	}

	if n := c.Limits.MaxDrawCount; n < 1 || n > MaxDrawCountLimit {
		bad("limits.max_draw_count", n, "limits.max_draw_count %d: want 1 to %d", n, MaxDrawCountLimit)
	}
	if c.Limits.MaxBodyBytes <= 0 {
		bad("limits.max_body_bytes", c.Limits.MaxBodyBytes, "limits.max_body_bytes %q: must be greater than zero", c.Limits.MaxBodyBytes)
	}

	if n := c.Connections.Max; n < 1 {
		bad("connections.max", n, "connections.max %d: must be at least 1", n)
	}
	for _, d := range []struct {
		path string
		v    Duration
	}{
		{"connections.handshake_timeout", c.Connections.HandshakeTimeout},
		{"connections.header_timeout", c.Connections.HeaderTimeout},
		{"connections.body_timeout", c.Connections.BodyTimeout},
		{"connections.idle_timeout", c.Connections.IdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.path, d.v, "%s %q: must be greater than zero", d.path, d.v)
		}
	}

	for _, t := range []struct{ path, v string }{{"admin_token", c.AdminToken}, {"client_token", c.ClientToken}, {"replication.token", c.Replication.Token}} {
		// Tokens are not echoed: the log line holding this error may be
		// read by people who should not learn them.
		if i := strings.IndexFunc(t.v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
			bad(t.path, t.v, "%s: whitespace or control character at byte %d (it could not be sent in an Authorization header)", t.path, i)
		}
	}
	if c.ClientToken != "" && c.ClientToken == c.AdminToken {
		bad("client_token", c.ClientToken, "client_token: the same as admin_token (every client could change items)")
	}

	switch cert, key := c.TLS.CertFile, c.TLS.KeyFile; {
	case cert == "" && key != "":
		bad("tls.cert_file", cert, "tls: key_file is set but cert_file is not (set both or neither)")
	case cert != "" && key == "":
		bad("tls.key_file", key, "tls: cert_file is set but key_file is not (set both or neither)")
	case cert != "":
		for _, f := range []struct{ path, v string }{{"tls.cert_file", cert}, {"tls.key_file", key}} {
			if st, err := os.Stat(f.v); err != nil {
				bad(f.path, f.v, "%s %q: %v", f.path, f.v, unwrapPath(err))
			} else if !st.Mode().IsRegular() {
				bad(f.path, f.v, "%s %q: not a regular file", f.path, f.v)
			}
		}
	}

	if c.ReplicaOf != "" {
		if _, port, err := net.SplitHostPort(c.ReplicaOf); err != nil || port == "" || port == "0" {
			bad("replica_of", c.ReplicaOf, "replica_of %q: want the primary's host:port, like 10.0.0.1:7070", c.ReplicaOf)
		}
	}
	switch n := c.Replication.MinSyncReplicas; {
	case n < 0:
		bad("replication.min_sync_replicas", n, "replication.min_sync_replicas %d: must not be negative", n)
	case n > 100:
		bad("replication.min_sync_replicas", n, "replication.min_sync_replicas %d: at most 100", n)
	}
	if c.Replication.ReadyMaxLag <= 0 {
		bad("replication.ready_max_lag", c.Replication.ReadyMaxLag, "replication.ready_max_lag %q: must be greater than zero", c.Replication.ReadyMaxLag)
	}
	if f := c.Replication.CAFile; f != "" {
		if st, err := os.Stat(f); err != nil {
			bad("replication.ca_file", f, "replication.ca_file %q: %v", f, unwrapPath(err))
		} else if !st.Mode().IsRegular() {
			bad("replication.ca_file", f, "replication.ca_file %q: not a regular file", f)
		}
	}

	if n := c.Metrics.PerItemMaxItems; n < 0 {
		bad("metrics.per_item_max_items", n, "metrics.per_item_max_items %d: must not be negative", n)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", c.ShutdownTimeout, "shutdown_timeout %q: must be greater than zero", c.ShutdownTimeout)
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")

	firstPool := map[string]int{}
	for i, p := range c.Pools {
		pp := fmt.Sprintf("pools[%d]", i)
		switch {
		case p.Name == "":
			bad(pp+".name", p.Name, "name is empty")
		case !poolNameRE.MatchString(p.Name) || p.Name == "." || p.Name == "..":
			bad(pp+".name", p.Name, "name %q: want 1 to %d of A-Z a-z 0-9 _ . - (not . or ..): it names the pool's directory", p.Name, maxPoolNameLen)
		case p.Name == JournalDir:
			bad(pp+".name", p.Name, "name %q is reserved: the node's commit journal lives in <data_dir>/%s", p.Name, JournalDir)
		default:
			if j, dup := firstPool[p.Name]; dup {
				bad(pp+".name", p.Name, "duplicate pool name %q (%s)", p.Name, c.first(fmt.Sprintf("pools[%d]", j), "name"))
			} else {
				firstPool[p.Name] = i
			}
		}
		if len(p.Items) > pool.MaxItems {
			bad(pp+".items", nil, "items: %d, more than the limit %d", len(p.Items), pool.MaxItems)
		}
		firstItem := make(map[string]int, len(p.Items))
		// The path of an item is built only for a problem: a catalog can
		// hold a million items.
		ip := func(j int, field string) string { return pp + ".items[" + strconv.Itoa(j) + "]." + field }
		for j, it := range p.Items {
			// Check each field alone, so each problem points at its line.
			if err := pool.ValidateItem(pool.Item{ID: it.ID, Weight: 1}); err != nil {
				bad(ip(j, "id"), it.ID, "%s", itemMsg(err))
			} else if k, dup := firstItem[it.ID]; dup {
				bad(ip(j, "id"), it.ID, "duplicate item id %q (%s)", it.ID, c.first(fmt.Sprintf("%s.items[%d]", pp, k), "id"))
			} else {
				firstItem[it.ID] = j
			}
			if err := pool.ValidateItem(pool.Item{ID: "x", Quantity: it.Quantity, Weight: 1}); err != nil {
				bad(ip(j, "quantity"), it.Quantity, "%s", itemMsg(err))
			}
			if err := pool.ValidateItem(pool.Item{ID: "x", Weight: uint64(it.Weight)}); err != nil {
				bad(ip(j, "weight"), it.Weight, "%s", itemMsg(err))
			}
		}
		c.checkRules(i, bad)
	}
	return probs
}

// isBad reports whether path, or a value enclosing it, had a parse error:
// its problem is reported already, and the value is not what the file
// meant.
func (s *source) isBad(path string) bool {
	if s == nil {
		return false
	}
	for p := path; ; p = parent(p) {
		if s.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// val returns the value the file gave path, if it set one.
func (s *source) val(path string) (string, bool) {
	if s == nil {
		return "", false
	}
	v, ok := s.vals[path]
	return v, ok
}

// first describes where the first of two duplicates is.
func (c *Config) first(path, key string) string {
	if l := c.lineOf(path+"."+key, nil); l > 0 {
		return fmt.Sprintf("first at line %d", l)
	}
	return "first is " + path
}

// itemMsg turns a pool.ValidateItem error into the field part of a message:
// `pool: item "x": quantity -2 is negative (use -1 for unlimited): invalid
// item` becomes `quantity -2 is negative (use -1 for unlimited)`.
func itemMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "pool: ")
	msg = strings.TrimSuffix(msg, ": "+pool.ErrInvalidItem.Error())
	msg = strings.TrimPrefix(msg, `item "x": `)
	if strings.HasPrefix(msg, "item id") {
		msg = msg[len("item "):]
	}
	return msg
}

// lineOf returns the line of the value at path, or of its nearest
// enclosing value when the file does not set it (tls.key_file missing:
// the line of tls). It returns 0 when c was not loaded from a file, or when
// cur (if not nil) differs from the value the file gave: the value was set
// afterwards, so the file's line would mislead.
func (c *Config) lineOf(path string, cur any) int {
	if c.src == nil {
		return 0
	}
	if v, ok := c.src.vals[path]; ok && cur != nil && v != fmt.Sprint(cur) {
		return 0
	}
	if m := poolPathRE.FindStringSubmatch(path); m != nil && m[2] != "" {
		pi, _ := strconv.Atoi(m[1])
		ii, _ := strconv.Atoi(m[2])
		if pi < len(c.src.items) && ii < len(c.src.items[pi]) {
			il := c.src.items[pi][ii]
			if l := il[itemField(m[3])]; l > 0 && m[3] != "" {
				return int(l)
			}
			if il[0] > 0 {
				return int(il[0])
			}
		}
	}
	for p := path; p != ""; p = parent(p) {
		if l, ok := c.src.lines[p]; ok {
			return l
		}
	}
	return 0
}

// parent strips the last ".key" or "[i]" of a path.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func orList(want []string) string {
	switch len(want) {
	case 1:
		return want[0]
	case 2:
		return want[0] + " or " + want[1]
	}
	return strings.Join(want[:len(want)-1], ", ") + " or " + want[len(want)-1]
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
