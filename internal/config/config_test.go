package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rewardpool/rewardpool"
)

// plain returns c without its source positions, for reflect.DeepEqual.
func plain(c *Config) Config {
	cp := *c
	cp.src = nil
	return cp
}

// fieldErrors unpacks a joined error into its *FieldError parts.
func fieldErrors(t *testing.T, err error) []*FieldError {
	t.Helper()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v (%T) is not an errors.Join", err, err)
	}
	var out []*FieldError
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("part %v (%T) is not a *FieldError", e, e)
		}
		out = append(out, fe)
	}
	return out
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	want := Config{
		Listen:              "127.0.0.1:7070",
		DataDir:             "./data",
		Durability:          "always",
		GroupCommit:         "node",
		SyncInterval:        Duration(10 * time.Millisecond),
		SnapshotLogPercent:  100,
		SnapshotMinInterval: Duration(time.Second),
		IdempotencyWindow:   1000000,
		IdempotencyBytes:    256 << 20,
		WAL:                 WALConfig{Codec: "binary", Storage: "file", SegmentSize: 64 << 20},
		Limits:              Limits{MaxDrawCount: 10000, MaxBodyBytes: 1 << 20},
		Connections: Connections{Max: 4096, HandshakeTimeout: Duration(10 * time.Second),
			HeaderTimeout: Duration(10 * time.Second), BodyTimeout: Duration(30 * time.Second),
			IdleTimeout: Duration(2 * time.Minute)},
		ShutdownTimeout: Duration(10 * time.Second),
		Replication:     ReplicationConfig{ReadyMaxLagRecords: 10000, ReadyMaxLag: Duration(10 * time.Second)},
		Metrics:         MetricsConfig{PerItemMaxItems: 10000},
		Log:             LogConfig{Level: "info", Format: "text"},
		Pools: []Pool{{Name: "default", Items: []Item{
			{ID: "diamond", Quantity: 100, Weight: 10_000_000},
			{ID: "gold", Quantity: 1000, Weight: 20_000_000},
			{ID: "mud", Quantity: -1, Weight: 70_000_000},
		}}},
	}
	if got := plain(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestEmptyInputGetsDefaultsAndDemoPool(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"comments only", "# nothing here\n"},
		{"null document", "~\n"},
		{"empty pools", "pools: []\n"},
		{"null pools", "pools:\n"},
		{"null sections", "wal:\nlimits:\ntls:\nlog:\nlisten:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in), "c.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := plain(c), *Default(); !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// fullWant is testdata/full.yaml: every field differs from its default.
var fullWant = Config{
	Listen:              "0.0.0.0:9090",
	DataDir:             "/var/lib/rewardpool",
	GroupCommit:         "pool",
	Durability:          "interval",
	SyncInterval:        Duration(5 * time.Millisecond),
	SnapshotEvery:       5000,
	SnapshotLogPercent:  50,
	SnapshotMinInterval: Duration(5 * time.Second),
	IdempotencyWindow:   42,
	IdempotencyBytes:    64 << 20,
	WAL:                 WALConfig{Codec: "jsonl", Storage: "mmap", SegmentSize: 512 << 10, KeepSegments: 3, KeepBytes: 256 << 20},
	Limits:              Limits{MaxDrawCount: 250, MaxBodyBytes: 2 << 20},
	Connections: Connections{Max: 100, HandshakeTimeout: Duration(3 * time.Second),
		HeaderTimeout: Duration(4 * time.Second), BodyTimeout: Duration(5 * time.Second),
		IdleTimeout: Duration(6 * time.Minute)},
	AdminToken:  "admin-secret",
	ClientToken: "client-secret",
	TLS:         TLSConfig{CertFile: "testdata/cert.pem", KeyFile: "testdata/key.pem"},
	ReplicaOf:   "10.0.0.1:7070",
	Replication: ReplicationConfig{Token: "repl-secret", CAFile: "testdata/cert.pem", LogRecords: true,
		ReadyMaxLagRecords: 50, ReadyMaxLag: Duration(3 * time.Second)},
	ShutdownTimeout: Duration(90 * time.Second),
	Metrics:         MetricsConfig{PerItemMaxItems: 500},
	Log:             LogConfig{Level: "debug", Format: "json"},
	Pools: []Pool{
		{Name: "default", Items: []Item{
			{ID: "diamond", Quantity: 100, Weight: 10_000_000},
			{ID: "gold", Quantity: 1000, Weight: 20_000_000},
			{ID: "mud", Quantity: -1, Weight: 70_000_000},
		}},
		{Name: "launch-2026.v1", Items: []Item{
			{ID: "rare", Quantity: 0, Weight: 100_000},
			{ID: "common", Quantity: 1_000_000, Weight: 999_999_999_999},
		}},
	},
}

func TestFullFile(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := plain(c); !reflect.DeepEqual(got, fullWant) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, fullWant)
	}
	// Every field really is set: none equals its default.
	d := reflect.ValueOf(*Default())
	v := reflect.ValueOf(fullWant)
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.IsExported() && reflect.DeepEqual(v.Field(i).Interface(), d.Field(i).Interface()) {
			t.Errorf("full.yaml leaves %s at its default", f.Name)
		}
	}

	t.Run("marshal and parse again", func(t *testing.T) {
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(out, "marshaled")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := plain(c2); !reflect.DeepEqual(got, fullWant) {
			t.Fatalf("got\n%+v\nwant\n%+v\nfrom\n%s", got, fullWant, out)
		}
	})

	t.Run("yaml tags match the parser", func(t *testing.T) {
		// Decoding with the struct tags and KnownFields gives the same
		// Config: the hand-written walker and the tags agree.
		f, err := os.Open("testdata/full.yaml")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		var c2 Config
		if err := dec.Decode(&c2); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c2, fullWant) {
			t.Fatalf("got\n%+v\nwant\n%+v", c2, fullWant)
		}
	})
}

func TestJSON(t *testing.T) {
	in := `{
  "listen": ":8080",
  "durability": "none",
  "wal": {"segment_size": "1MiB", "keep_segments": 2},
  "limits": {"max_draw_count": 10},
  "pools": [
    {"name": "p1", "items": [
      {"id": "a", "quantity": -1, "weight": 0.1},
      {"id": "b", "quantity": "7", "weight": "2.5"}
    ]}
  ]
}`
	c, err := Parse([]byte(in), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	want := *Default()
	want.Listen = ":8080"
	want.Durability = "none"
	want.WAL.SegmentSize = 1 << 20
	want.WAL.KeepSegments = 2
	want.Limits.MaxDrawCount = 10
	want.Pools = []Pool{{Name: "p1", Items: []Item{
		{ID: "a", Quantity: -1, Weight: 100_000},
		{ID: "b", Quantity: 7, Weight: 2_500_000},
	}}}
	if got := plain(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}

	_, err = Parse([]byte("{\n  \"listen\": \":8080\",\n  \"pols\": []\n}"), "c.json")
	fes := fieldErrors(t, err)
	if len(fes) != 1 || fes[0].Line != 3 || !strings.Contains(fes[0].Msg, `unknown field "pols" (did you mean "pools"?)`) {
		t.Fatalf("got %v", err)
	}
}

func TestWeight(t *testing.T) {
	for _, tc := range []struct {
		name, lit string
		want      Weight
		err       string
	}{
		{"one tenth is exact", "0.1", 100_000, ""},
		{"quoted", `"0.1"`, 100_000, ""},
		{"integer", "10", 10_000_000, ""},
		{"smallest", "0.000001", 1, ""},
		{"largest", "1000000", 1_000_000_000_000, ""},
		{"six places", "0.333333", 333_333, ""},
		{"exponent", "1e3", 0, `weight "1e3": not a plain decimal number`},
		{"seven places", "0.0000001", 0, `weight "0.0000001": more than 6 decimal places`},
		{"zero", "0", 0, `weight "0": must be greater than zero`},
		{"negative", "-1", 0, `weight "-1": negative`},
		{"too large", "1000000.000001", 0, `weight "1000000.000001": greater than the maximum 1000000`},
		{"list", "[1]", 0, `weight: want a number like 10 or 0.5, got a list`},
		{"null", "", 0, `weight: empty (it is required)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := "pools:\n  - name: p\n    items:\n      - id: x\n        quantity: 1\n        weight: " + tc.lit + "\n"
			c, err := Parse([]byte(in), "w.yaml")
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Pools[0].Items[0].Weight; got != tc.want {
					t.Fatalf("weight %s = %d units, want %d", tc.lit, got, tc.want)
				}
				if got := c.EngineOptions(c.Pools[0]).Items[0].Weight; got != uint64(tc.want) {
					t.Fatalf("EngineOptions weight = %d, want %d", got, tc.want)
				}
				return
			}
			want := `w.yaml:6: pools[0] "p" items[0] "x": ` + tc.err
			if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v\nwant a single error starting %s", err, want)
			}
		})
	}
}

func TestSizesAndDurations(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"64MiB", 64 << 20, "64MiB"},
		{"512 KiB", 512 << 10, "512KiB"},
		{"1048576", 1 << 20, "1MiB"},
		{"4097", 4097, "4097"},
		{"10MB", 10_000_000, "10000000"},
		{"2GiB", 2 << 30, "2GiB"},
		{"1TiB", 1 << 40, "1TiB"},
		{"3B", 3, "3"},
	} {
		got, err := ParseByteSize(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseByteSize(%q) = %d (%s), %v; want %d (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "-1", "64mb", "64 M", "99999999999TiB"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	if d, err := ParseDuration("1m30s"); err != nil || d != Duration(90*time.Second) || d.String() != "1m30s" {
		t.Errorf("ParseDuration(1m30s) = %v, %v", d, err)
	}
	if _, err := ParseDuration("10"); err == nil || !strings.Contains(err.Error(), "missing unit") {
		t.Errorf("ParseDuration(10) error = %v, want missing unit", err)
	}
}

// TestErrors checks each problem alone: its line and message, and that it
// is the only one reported.
func TestErrors(t *testing.T) {
	const pool = "pools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 1}\n" // lines 1-4
	for _, tc := range []struct {
		name string
		in   string
		line int
		msg  string // the whole message after "file:line: "
	}{
		{"unknown top key", "listen: :1\nlisen: x\n", 2, `unknown field "lisen" (did you mean "listen"?)`},
		{"unknown key far from any", "bogus: 1\n", 1, `unknown field "bogus" (known: listen, `},
		{"unknown wal key", "wal:\n  codec: text\n  segmentsize: 1\n", 3, `wal: unknown field "segmentsize" (did you mean "segment_size"?)`},
		{"unknown item key", pool + "      - {id: b, quantity: 1, weight: 1, wieght: 2}\n", 5, `pools[0] "p" items[1] "b": unknown field "wieght" (did you mean "weight"?)`},
		{"unknown pool key", "pools:\n  - name: p\n    itmes: []\n", 3, `pools[0] "p": unknown field "itmes" (did you mean "items"?)`},
		{"duplicate key", "listen: :1\ndata_dir: d\nlisten: :2\n", 3, `listen: duplicate key (first at line 1)`},
		{"top level list", "- a\n- b\n", 1, `the top level: want a mapping (key: value lines), got a list`},
		{"section not a mapping", "wal: binary\n", 1, `wal: want a mapping (key: value lines), got "binary"`},
		{"string for a list", "pools: default\n", 1, `pools: want a list of pools (- name: ...), got "default"`},
		{"item not a mapping", pool + "      - b\n", 5, `pools[0] "p" items[1]: want a mapping (key: value lines), got "b"`},
		{"wrong int type", "snapshot_every: lots\n", 1, `snapshot_every "lots": want an integer`},
		{"negative uint", "snapshot_every: -5\n", 1, `snapshot_every "-5": out of range 0..`},
		{"int overflow", "idempotency_window: 99999999999999\n", 1, `idempotency_window "99999999999999": out of range`},
		{"string for a string list", "listen: [a]\n", 1, `listen: want a string, got a list`},
		{"bad duration", "sync_interval: 10\n", 1, `sync_interval "10": missing unit (want e.g. "10ms" or "2s")`},
		{"bad duration text", "shutdown_timeout: soon\n", 1, `shutdown_timeout "soon": not a duration`},
		{"bad size", "wal:\n  segment_size: 64 megs\n", 2, `wal.segment_size "64 megs": want a whole number of bytes`},

		{"listen without port", "listen: 127.0.0.1\n", 1, `listen "127.0.0.1": want host:port, like 127.0.0.1:7070 or :7070`},
		{"listen bad port", "listen: localhost:http\n", 1, `listen "localhost:http": port "http": want a number 0..65535`},
		{"listen port too big", "listen: :70000\n", 1, `listen ":70000": port "70000": want a number 0..65535`},
		{"empty data_dir", "data_dir: ''\n", 1, `data_dir: empty`},
		{"durability", "listen: :1\ndata_dir: d\ndurability: sometimes\n", 3, `durability "sometimes": want always, interval or none`},
		{"sync interval zero", "sync_interval: 0s\n", 1, `sync_interval "0s": must be greater than zero`},
		{"sync interval negative", "sync_interval: -1ms\n", 1, `sync_interval "-1ms": must be greater than zero`},
		{"snapshot_every zero", "snapshot_every: 0\n", 1, `snapshot_every 0: must be at least 1`},
		{"snapshot_log_percent zero", "snapshot_log_percent: 0\n", 1, `snapshot_log_percent 0: must be at least 1`},
		{"snapshot_min_interval negative", "snapshot_min_interval: -1s\n", 1, `snapshot_min_interval "-1s": must not be negative`},
		{"idempotency_window zero", "idempotency_window: 0\n", 1, `idempotency_window 0: must be at least 1`},
		{"idempotency_window_bytes too small", "idempotency_window_bytes: 64KiB\n", 1, `idempotency_window_bytes "64KiB": want at least 1MiB (one answer of up to 10000 draws must fit)`},
		{"idempotency_window_bytes not a size", "idempotency_window_bytes: lots\n", 1, `idempotency_window_bytes "lots": want a whole number of bytes`},
		{"codec", "wal:\n  codec: xml\n", 2, `wal.codec "xml": want binary, text or jsonl`},
		{"storage", "wal:\n  storage: tape\n", 2, `wal.storage "tape": want file or mmap`},
		{"segment too small", "wal:\n  segment_size: 1KiB\n", 2, `wal.segment_size "1KiB": want 4KiB to 1TiB`},
		{"segment too large", "wal:\n  segment_size: 2TiB\n", 2, `wal.segment_size "2TiB": want 4KiB to 1TiB`},
		{"keep_segments negative", "wal:\n  keep_segments: -1\n", 2, `wal.keep_segments -1: must not be negative`},
		{"max_draw_count zero", "limits:\n  max_draw_count: 0\n", 2, `limits.max_draw_count 0: want 1 to 10000`},
		{"max_draw_count too big", "limits:\n  max_draw_count: 10001\n", 2, `limits.max_draw_count 10001: want 1 to 10000`},
		{"max_body_bytes zero", "limits:\n  max_body_bytes: 0\n", 2, `limits.max_body_bytes "0": must be greater than zero`},
		{"token with space", "admin_token: 'a b'\n", 1, `admin_token: whitespace or control character at byte 1`},
		{"same tokens", "admin_token: t0k\nclient_token: t0k\n", 2, `client_token: the same as admin_token`},
		{"min_sync_replicas too many", "replication:\n  token: r\n  min_sync_replicas: 101\n", 3, `replication.min_sync_replicas 101: at most 100`},
		{"min_sync_replicas negative", "replication:\n  min_sync_replicas: -1\n", 2, `replication.min_sync_replicas -1: must not be negative`},
		{"replica_of without port", "replica_of: primary\n", 1, `replica_of "primary": want the primary's host:port`},
		{"replication token with space", "replication:\n  token: 'a b'\n", 2, `replication.token: whitespace or control character at byte 1`},
		{"unknown replication key", "replication:\n  tokn: x\n", 2, `replication: unknown field "tokn" (did you mean "token"?)`},
		{"tls cert only", "tls:\n  cert_file: testdata/cert.pem\n", 2, `tls: cert_file is set but key_file is not (set both or neither)`},
		{"tls key only", "tls:\n  key_file: testdata/key.pem\n", 2, `tls: key_file is set but cert_file is not (set both or neither)`},
		{"tls missing file", "tls:\n  cert_file: testdata/cert.pem\n  key_file: testdata/nope.pem\n", 3, `tls.key_file "testdata/nope.pem": no such file or directory`},
		{"tls directory", "tls:\n  cert_file: testdata\n  key_file: testdata/key.pem\n", 2, `tls.cert_file "testdata": not a regular file`},
		{"shutdown_timeout zero", "shutdown_timeout: 0s\n", 1, `shutdown_timeout "0s": must be greater than zero`},
		{"connections max zero", "connections:\n  max: 0\n", 2, `connections.max 0: must be at least 1`},
		{"body_timeout zero", "connections:\n  body_timeout: 0s\n", 2, `connections.body_timeout "0s": must be greater than zero`},
		{"handshake_timeout bad", "connections:\n  handshake_timeout: 5\n", 2, `connections.handshake_timeout "5": missing unit`},
		{"log level", "log:\n  level: verbose\n", 2, `log.level "verbose": want debug, info, warn or error`},
		{"log format", "log:\n  format: xml\n", 2, `log.format "xml": want text or json`},

		{"pool name missing", "pools:\n  - items: []\n", 2, `pools[0]: name is missing`},
		{"pool name empty", "pools:\n  - name: ''\n", 2, `pools[0]: name is empty`},
		{"pool name with slash", "pools:\n  - name: a/b\n", 2, `pools[0]: name "a/b": want 1 to 64 of A-Z a-z 0-9 _ . - (not . or ..)`},
		{"pool name dotdot", "pools:\n  - name: ..\n", 2, `pools[0]: name "..": want 1 to 64`},
		{"pool name too long", "pools:\n  - name: " + strings.Repeat("x", 65) + "\n", 2, `pools[0]: name "xxxx`},
		{"duplicate pool", pool + "  - name: q\n  - name: p\n", 6, `pools[2]: duplicate pool name "p" (first at line 2)`},
		{"pools not a list of mappings", "pools:\n  - p\n", 2, `pools[0]: want a mapping (key: value lines), got "p"`},
		{"items not a list", "pools:\n  - name: p\n    items: {a: 1}\n", 3, `pools[0] "p": items: want a list of items`},

		{"item id missing", pool + "      - {quantity: 1, weight: 1}\n", 5, `pools[0] "p" items[1]: id is missing`},
		{"item quantity missing", pool + "      - {id: b, weight: 1}\n", 5, `pools[0] "p" items[1] "b": quantity is missing (use -1 for unlimited)`},
		{"item weight missing", pool + "      - {id: b, quantity: 1}\n", 5, `pools[0] "p" items[1] "b": weight is missing`},
		{"item quantity null", pool + "      - id: b\n        quantity:\n        weight: 1\n", 6, `pools[0] "p" items[1] "b": quantity: empty (it is required)`},
		{"item id empty", pool + "      - {id: '', quantity: 1, weight: 1}\n", 5, `pools[0] "p" items[1]: id is empty`},
		{"item id whitespace", pool + "      - {id: 'a b', quantity: 1, weight: 1}\n", 5, `pools[0] "p" items[1]: id "a b": whitespace or control character at byte 1`},
		{"duplicate item", pool + "      - {id: b, quantity: 1, weight: 1}\n      - {id: a, quantity: 2, weight: 2}\n", 6, `pools[0] "p" items[2]: duplicate item id "a" (first at line 4)`},
		{"quantity below -1", pool + "      - {id: b, quantity: -2, weight: 1}\n", 5, `pools[0] "p" items[1] "b": quantity -2 is negative (use -1 for unlimited)`},
		{"quantity fraction", pool + "      - {id: b, quantity: 1.5, weight: 1}\n", 5, `pools[0] "p" items[1] "b": quantity "1.5": want an integer`},
		{"weight precision", pool + "      - {id: mud, quantity: -1, weight: 0.0000001}\n", 5, `pools[0] "p" items[1] "mud": weight "0.0000001": more than 6 decimal places`},
		{"weight exponent", pool + "      - {id: b, quantity: 1, weight: 1e3}\n", 5, `pools[0] "p" items[1] "b": weight "1e3": not a plain decimal number`},
		{"weight too large", pool + "      - {id: b, quantity: 1, weight: 1000001}\n", 5, `pools[0] "p" items[1] "b": weight "1000001": greater than the maximum 1000000`},

		{"yaml syntax", "listen: :1\npools: [\n  - x\n", 2, `YAML syntax: `},
		{"second document", "listen: :1\n---\nlisten: :2\n", 2, `a second YAML document (after ---): want exactly one`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in), "c.yaml")
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config %+v returned with an error", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			fes := fieldErrors(t, err)
			if len(fes) != 1 {
				t.Fatalf("%d errors, want 1:\n%v", len(fes), err)
			}
			fe := fes[0]
			if fe.File != "c.yaml" || fe.Line != tc.line || !strings.HasPrefix(fe.Msg, tc.msg) {
				t.Fatalf("got  %s\nwant c.yaml:%d: %s...", fe, tc.line, tc.msg)
			}
			if got, want := err.Error(), "c.yaml:"; !strings.HasPrefix(got, want) {
				t.Fatalf("Error() = %q, want prefix %q", got, want)
			}
		})
	}
}

func TestAllErrorsReportedTogether(t *testing.T) {
	in := `listen: 127.0.0.1
durability: sometimes
lisen: x
wal:
  codec: xml
limits: {max_draw_count: 20000}
pools:
  - name: default
    items:
      - {id: diamond, quantity: 100, weight: 10}
      - {id: gold, weight: 20}
      - {id: mud, quantity: -1, weight: 0.0000001}
  - name: default
`
	_, err := Parse([]byte(in), "config.yaml")
	want := []string{
		`config.yaml:1: listen "127.0.0.1": want host:port`,
		`config.yaml:2: durability "sometimes": want always, interval or none`,
		`config.yaml:3: unknown field "lisen" (did you mean "listen"?)`,
		`config.yaml:5: wal.codec "xml": want binary, text or jsonl`,
		`config.yaml:6: limits.max_draw_count 20000: want 1 to 10000`,
		`config.yaml:11: pools[0] "default" items[1] "gold": quantity is missing (use -1 for unlimited)`,
		`config.yaml:12: pools[0] "default" items[2] "mud": weight "0.0000001": more than 6 decimal places`,
		`config.yaml:13: pools[1]: duplicate pool name "default" (first at line 8)`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\ngot  %s\nwant %s...", i, lines[i], want[i])
		}
	}
}

func TestValidateAfterOverride(t *testing.T) {
	c, err := Parse([]byte("listen: :1\ndurability: sometimes\n"), "c.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), `c.yaml:2: durability "sometimes"`) {
		t.Fatalf("got %v", err)
	}
	c, err = Parse([]byte("# comment\nlisten: :1\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Listen = "nope" // as a --listen flag would
	c.Durability = "sometimes"
	c.Pools[0].Items[0].Weight = 0
	err = c.Validate()
	fes := fieldErrors(t, err)
	want := []string{
		`config: listen "nope": want host:port`,
		`config: durability "sometimes": want always, interval or none`,
		`config: pools[0] "default" items[0] "diamond": weight is zero`,
	}
	if len(fes) != len(want) {
		t.Fatalf("got %v", err)
	}
	for i, fe := range fes {
		if !strings.HasPrefix(fe.Error(), want[i]) {
			t.Errorf("got  %s\nwant %s...", fe, want[i])
		}
	}

	// A Config built in code names no file.
	bad := Default()
	bad.WAL.Codec = "xml"
	if err := bad.Validate(); err == nil || err.Error() != `config: wal.codec "xml": want binary, text or jsonl` || !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

func TestTLSFilesThatExist(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse([]byte("tls:\n  cert_file: "+cert+"\n  key_file: "+key+"\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.CertFile != cert || c.TLS.KeyFile != key {
		t.Fatalf("tls = %+v", c.TLS)
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yaml"); err == nil || errors.Is(err, ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("listen: :1\ndurability: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":2: durability") {
		t.Fatalf("got %v", err)
	}
}

func TestExampleFile(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example documents the defaults: apart from its extra pool it is
	// Default().
	got := plain(c)
	if len(got.Pools) != 2 || got.Pools[1].Name != "launch" {
		t.Fatalf("pools = %+v", got.Pools)
	}
	if got.Pools[1].Items[0].Weight != 500_000 {
		t.Errorf("legendary weight = %d, want 500000", got.Pools[1].Items[0].Weight)
	}
	got.Pools = got.Pools[:1]
	if want := *Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("example.yaml differs from Default():\n%+v\n%+v", got, want)
	}
}

func TestEngineOptions(t *testing.T) {
	c := plain(mustLoad(t, "testdata/full.yaml"))
	o := c.EngineOptions(c.Pools[1])
	want := rewardpool.Options{
		Items: []rewardpool.Item{
			{ID: "rare", Quantity: 0, Weight: 100_000},
			{ID: "common", Quantity: 1_000_000, Weight: 999_999_999_999},
		},
		Durability:          rewardpool.DurabilityInterval,
		SyncInterval:        5 * time.Millisecond,
		Codec:               "jsonl",
		Storage:             "mmap",
		SegmentSize:         512 << 10,
		KeepSegments:        3,
		KeepBytes:           256 << 20,
		SnapshotEvery:       5000,
		SnapshotLogPercent:  50,
		SnapshotMinInterval: 5 * time.Second,
		IdempotencyWindow:   42,
		IdempotencyBytes:    64 << 20,
		MaxDrawCount:        250,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("EngineOptions =\n%+v\nwant\n%+v", o, want)
	}
	// The defaults open an engine.
	d := Default()
	opts := d.EngineOptions(d.Pools[0])
	opts.Logger = slog.New(slog.DiscardHandler)
	e, err := rewardpool.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReplicationConfig(t *testing.T) {
	c, err := Parse([]byte("replica_of: 127.0.0.1:7070\nreplication:\n  token: s3cret\n  min_sync_replicas: 0\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ReplicaOf != "127.0.0.1:7070" || c.Replication.Token != "s3cret" || c.Replication.MinSyncReplicas != 0 {
		t.Fatalf("got replica_of %q replication %+v", c.ReplicaOf, c.Replication)
	}
	if d := Default(); d.ReplicaOf != "" || d.Replication != (ReplicationConfig{ReadyMaxLagRecords: DefaultReadyMaxLagRecords, ReadyMaxLag: DefaultReadyMaxLag}) {
		t.Fatalf("defaults: replica_of %q replication %+v", d.ReplicaOf, d.Replication)
	}
}
