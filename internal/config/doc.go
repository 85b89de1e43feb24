// Package config reads, defaults and validates the rewardpool server's
// configuration file.
//
// The file is YAML; JSON is accepted too, since YAML reads it. Every
// setting is optional except the id, quantity and weight of each item, and
// each has a default documented on its Config field (testdata/example.yaml
// is a commented example of all of them). An empty file, or a file without
// pools, is a complete configuration: it serves the built-in demo pool
// "default" (diamond ×100, gold ×1000, unlimited mud) from ./data/default.
// A null value (a key with nothing after the colon) means the default.
//
//	listen: 127.0.0.1:7070          # one port serves gRPC (h2c) and HTTP/JSON
//	data_dir: ./data
//	durability: always              # always | interval | none
//	pools:
//	  - name: default
//	    items:
//	      - {id: diamond, quantity: 100, weight: 10}
//	      - {id: mud, quantity: -1, weight: 70}   # -1 = unlimited
//
// Weights are plain decimals with at most 6 places, read from the file's
// text and never through float64, so 0.1 is exactly 100000 millionths and
// 1e3 is an error. Durations are written like "10ms" or "2s", sizes like
// "64MiB", "512KiB" or a plain byte count.
//
// Parsing is strict and every problem is reported at once, one per line,
// sorted by line, each naming the file, the line, the field and, inside
// pools, the pool and item:
//
//	config.yaml:3: durability "sometimes": want always, interval or none
//	config.yaml:7: unknown field "lisen" (did you mean "listen"?)
//	config.yaml:12: pools[0] "default" items[2] "mud": weight "0.0000001": more than 6 decimal places
//	config.yaml:13: pools[0] "default" items[3] "gold": quantity is missing (use -1 for unlimited)
//	config.yaml:15: pools[1]: duplicate pool name "default" (first at line 5)
//
// Each is a *FieldError wrapping ErrInvalid. A catalog generated one item a
// line ("- {id: x, quantity: 1, weight: 2}") is read without YAML's node
// tree, so a million items parse in about a second (see fastitems.go); any
// other layout takes the general path, with the same meaning and errors. Validate can be called again
// after command-line overrides; a value that no longer matches the file is
// reported without the file's line ("config: listen ...").
//
// The config seeds a pool only when its directory is first created; after
// that the pool's catalog lives in its snapshots and WAL and changes through
// the admin API. EngineOptions maps the settings of one pool to the
// engine's rewardpool.Options.
package config
