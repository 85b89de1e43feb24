package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem in a configuration. Load, Parse and Validate
// return them joined with errors.Join, one per line, sorted by line.
type FieldError struct {
	File string // the name given to Parse or the path given to Load; "" when unknown
	Line int    // 1-based line in File; 0 when unknown
	Path string // field path, like "durability" or "pools[0].items[2].weight"
	Msg  string // what is wrong, naming the pool and item: `pools[0] "default" items[2] "mud": weight "0": must be greater than zero`
}

// Error formats e as "file:line: msg", or "config: msg" when the value does
// not come from a known line (a default, or a value set after loading).
func (e *FieldError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return "config: " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Load reads the configuration file at path; see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a configuration from YAML or JSON. name (usually the file
// path; "config" if empty) prefixes every error. Parsing is strict: unknown and duplicate keys,
// wrong types and a missing id, quantity or weight of an item are errors.
// Fields the input leaves out (or sets to null) keep their defaults; an
// input without pools, or with an empty list, gets the built-in demo pool
// "default", so an empty file is a complete configuration. The result is
// validated; every problem found, in parsing and validation, is reported
// at once, each naming the file, line, field, pool and item.
func Parse(data []byte, name string) (*Config, error) {
	if name == "" {
		name = "config"
	}
	// A generated catalog is mostly one-line items; lift those out of the
	// text before YAML sees them (see fastItems), and parse the whole text
	// again the slow way if the shortcut does not fit the document.
	if text, runs := fastItems(data); len(runs) > 0 {
		c, err, ok := parse(text, name, runs)
		if ok {
			return c, err
		}
	}
	c, err, _ := parse(data, name, nil)
	return c, err
}

// parse is Parse with the item runs fastItems lifted out of data. ok is
// false when a run did not land in a pool's items list, where the slow
// path must decide what the lines mean.
func parse(data []byte, name string, runs map[int]*itemRun) (_ *Config, _ error, ok bool) {
	src := &source{name: name, lines: map[string]int{}, vals: map[string]string{}, bad: map[string]bool{}}
	c := defaults()
	c.src = src
	p := &parser{src: src, runs: runs}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF): // empty, or only comments
	case err != nil:
		return nil, syntaxError(name, err), runs == nil
	default:
		var extra yaml.Node
		switch err := dec.Decode(&extra); {
		case errors.Is(err, io.EOF):
		case err != nil:
			return nil, syntaxError(name, err), runs == nil
		default:
			return nil, errors.Join(&FieldError{File: name, Line: extra.Line,
				Msg: "a second YAML document (after ---): want exactly one"}), runs == nil
		}
		if len(doc.Content) == 1 {
			p.top(c, doc.Content[0])
		}
	}
	if p.used != len(runs) {
		return nil, nil, false
	}
	doc = yaml.Node{} // the tree is garbage from here: let the GC have it
	if len(c.Pools) == 0 && !src.bad["pools"] {
		c.Pools = DemoPools()
	}
	probs := append(p.probs, c.check()...)
	if len(probs) == 0 {
		return c, nil, true
	}
	return nil, c.join(probs), true
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into "name:N: msg".
func syntaxError(name string, err error) error {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return errors.Join(&FieldError{File: name, Line: line, Msg: "YAML syntax: " + m[2]})
	}
	return errors.Join(&FieldError{File: name, Msg: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")})
}

var yamlLineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// source remembers where each value of a parsed Config came from.
type source struct {
	name  string
	lines map[string]int    // field path → line of its value (not for items: see items)
	vals  map[string]string // field path → the value as parsed (fmt.Sprint), to notice later changes
	bad   map[string]bool   // field paths whose parse error is already reported
	// items holds the lines of each pool's items, indexed like
	// Pools[i].Items[j]: 16 bytes an item instead of four path strings in
	// lines, which for a catalog of a million items cost more than the
	// catalog. Item values are not kept in vals: no flag overrides them.
	items [][]itemLines
}

// itemLines are the lines of an item and of its id, quantity and weight
// (0 when the file does not set the field).
type itemLines [4]int32

// itemField maps a key of an item to its index in itemLines.
func itemField(key string) int {
	switch key {
	case "id":
		return 1
	case "quantity":
		return 2
	case "weight":
		return 3
	}
	return 0
}

// problem is a FieldError before its message gets the pool and item label.
type problem struct {
	path string
	line int
	text string
}

// parser walks the yaml.Node tree into a Config, collecting problems.
type parser struct {
	src   *source
	probs []problem
	runs  map[int]*itemRun // item runs lifted out of the text, by the line of their placeholder
	used  int              // runs found in a pool's items list
	item  *itemLines       // the item being parsed: its fields' lines go here, not in src.lines
}

func (p *parser) fail(path string, n *yaml.Node, format string, args ...any) {
	p.src.bad[path] = true
	p.probs = append(p.probs, problem{path: path, line: n.Line, text: fmt.Sprintf(format, args...)})
}

// field is one key of a mapping: its handler gets the value node and the
// value's field path.
type field struct {
	key string
	set func(v *yaml.Node, path string)
}

// mapping walks the mapping n at path, calling the handler of each known
// key. Unknown and duplicate keys are problems. It returns the keys seen.
func (p *parser) mapping(n *yaml.Node, path string, fields []field) map[string]bool {
	seen := map[string]bool{}
	if n.Kind != yaml.MappingNode {
		p.fail(path, n, "%s: want a mapping (key: value lines), got %s", display(path), kindName(n))
		return seen
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			p.fail(path, k, "%sa key must be a plain name, got %s", within(path), kindName(k))
			continue
		}
		fp := joinPath(path, key)
		if line, dup := first[key]; dup {
			p.fail(fp, k, "%s: duplicate key (first at line %d)", display(fp), line)
			continue
		}
		first[key] = k.Line
		var set func(*yaml.Node, string)
		for _, f := range fields {
			if f.key == key {
				set = f.set
			}
		}
		if set == nil {
			p.fail(fp, k, "%sunknown field %q%s", within(path), key, suggest(key, fields))
			continue
		}
		seen[key] = true
		if p.item != nil {
			p.item[itemField(key)] = int32(v.Line)
		} else {
			p.src.lines[fp] = v.Line
		}
		set(v, fp)
	}
	return seen
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// within prefixes a problem with a key of the mapping at path: nothing at
// the top level and in pools and items (their label says where), else the
// mapping's name ("wal: ").
func within(path string) string {
	if path == "" || poolPathRE.MatchString(path) {
		return ""
	}
	return display(path) + ": "
}

// suggest proposes the known key closest to key, if one is close.
func suggest(key string, fields []field) string {
	best, bestD := "", 3
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	for _, f := range fields {
		if d := editDistance(norm, f.key); d < bestD {
			best, bestD = f.key, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Leaf decoders. A null value leaves the field at its default.

func (p *parser) str(dst *string) func(*yaml.Node, string) {
	return func(v *yaml.Node, path string) {
		if isNull(v) {
			return
		}
		if v.Kind != yaml.ScalarNode {
			p.fail(path, v, "%s: want a string, got %s", display(path), kindName(v))
			return
		}
		*dst = v.Value
		p.setVal(path, v.Value)
	}
}

// integer accepts YAML integers (10, 1_000, 0x10) and quoted decimal
// integers ("10", as some JSON writers produce).
func (p *parser) integer(v *yaml.Node, path string, lo, hi int64) (int64, bool) {
	if v.Kind != yaml.ScalarNode {
		p.fail(path, v, "%s: want an integer, got %s", display(path), kindName(v))
		return 0, false
	}
	var x int64
	var err error
	switch v.ShortTag() {
	case "!!int":
		err = v.Decode(&x)
	case "!!str":
		x, err = strconv.ParseInt(v.Value, 10, 64)
	default:
		err = errors.New("not an integer")
	}
	if err != nil {
		p.fail(path, v, "%s %q: want an integer", display(path), v.Value)
		return 0, false
	}
	if x < lo || x > hi {
		p.fail(path, v, "%s %q: out of range %d..%d", display(path), v.Value, lo, hi)
		return 0, false
	}
	return x, true
}

func (p *parser) int64f(dst *int64, lo int64) func(*yaml.Node, string) {
	return func(v *yaml.Node, path string) {
		if isNull(v) {
			return
		}
		if x, ok := p.integer(v, path, lo, 1<<63-1); ok {
			*dst = x
			p.setVal(path, x)
		}
	}
}

func (p *parser) intf(dst *int) func(*yaml.Node, string) {
	return func(v *yaml.Node, path string) {
		if isNull(v) {
			return
		}
		if x, ok := p.integer(v, path, -1<<31, 1<<31-1); ok {
			*dst = int(x)
			p.setVal(path, *dst)
		}
	}
}

func (p *parser) uintf(dst *uint64) func(*yaml.Node, string) {
	return func(v *yaml.Node, path string) {
		if isNull(v) {
			return
		}
		if x, ok := p.integer(v, path, 0, 1<<63-1); ok {
			*dst = uint64(x)
			p.setVal(path, *dst)
		}
	}
}

// scalar decodes v with parse; errors from parse name the value already.
func scalar[T any](p *parser, dst *T, what string, parse func(string) (T, error)) func(*yaml.Node, string) {
	return func(v *yaml.Node, path string) {
		if isNull(v) {
			return
		}
		if v.Kind != yaml.ScalarNode {
			p.fail(path, v, "%s: want %s, got %s", display(path), what, kindName(v))
			return
		}
		x, err := parse(v.Value)
		if err != nil {
			p.fail(path, v, "%s", fieldMsg(path, err))
			return
		}
		*dst = x
		p.setVal(path, x)
	}
}

// setVal remembers the value parsed at path, to notice a later override.
// Items' values are not remembered (see source.items).
func (p *parser) setVal(path string, v any) {
	if p.item == nil {
		p.src.vals[path] = fmt.Sprint(v)
	}
}

// fieldMsg turns `duration "5x": why` into `sync_interval "5x": why`.
func fieldMsg(path string, err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, ' '); i > 0 && strings.HasPrefix(msg[i+1:], `"`) {
		msg = msg[i+1:]
	}
	return display(path) + " " + msg
}

// top walks the document's root.
func (p *parser) top(c *Config, n *yaml.Node) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.fail("", n, "the top level: want a mapping (key: value lines), got %s", kindName(n))
		return
	}
	p.mapping(n, "", []field{
		{"listen", p.str(&c.Listen)},
		{"data_dir", p.str(&c.DataDir)},
		{"durability", p.str(&c.Durability)},
		{"group_commit", p.str(&c.GroupCommit)},
		{"sync_interval", scalar(p, &c.SyncInterval, `a duration like "10ms"`, ParseDuration)},
		{"snapshot_every", p.uintf(&c.SnapshotEvery)},
		{"snapshot_log_percent", p.intf(&c.SnapshotLogPercent)},
		{"snapshot_min_interval", scalar(p, &c.SnapshotMinInterval, `a duration like "1s"`, ParseDuration)},
		{"idempotency_window", p.intf(&c.IdempotencyWindow)},
		{"idempotency_window_bytes", scalar(p, &c.IdempotencyBytes, `a size like "256MiB"`, ParseByteSize)},
		{"wal", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"codec", p.str(&c.WAL.Codec)},
				{"storage", p.str(&c.WAL.Storage)},
				{"segment_size", scalar(p, &c.WAL.SegmentSize, `a size like "64MiB"`, ParseByteSize)},
				{"keep_segments", p.intf(&c.WAL.KeepSegments)},
				{"keep_bytes", scalar(p, &c.WAL.KeepBytes, `a size like "1GiB"`, ParseByteSize)},
			})
		}},
		{"limits", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"max_draw_count", p.intf(&c.Limits.MaxDrawCount)},
				{"max_body_bytes", scalar(p, &c.Limits.MaxBodyBytes, `a size like "1MiB"`, ParseByteSize)},
			})
		}},
		{"connections", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"max", p.intf(&c.Connections.Max)},
				{"handshake_timeout", scalar(p, &c.Connections.HandshakeTimeout, `a duration like "10s"`, ParseDuration)},
				{"header_timeout", scalar(p, &c.Connections.HeaderTimeout, `a duration like "10s"`, ParseDuration)},
				{"body_timeout", scalar(p, &c.Connections.BodyTimeout, `a duration like "30s"`, ParseDuration)},
				{"idle_timeout", scalar(p, &c.Connections.IdleTimeout, `a duration like "2m"`, ParseDuration)},
			})
		}},
		{"admin_token", p.str(&c.AdminToken)},
		{"client_token", p.str(&c.ClientToken)},
		{"tls", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"cert_file", p.str(&c.TLS.CertFile)},
				{"key_file", p.str(&c.TLS.KeyFile)},
			})
		}},
		{"shutdown_timeout", scalar(p, &c.ShutdownTimeout, `a duration like "10s"`, ParseDuration)},
		{"log", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"level", p.str(&c.Log.Level)},
				{"format", p.str(&c.Log.Format)},
			})
		}},
		{"replica_of", p.str(&c.ReplicaOf)},
		{"replication", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"token", p.str(&c.Replication.Token)},
				{"min_sync_replicas", p.intf(&c.Replication.MinSyncReplicas)},
				{"ca_file", p.str(&c.Replication.CAFile)},
				{"log_records", scalar(p, &c.Replication.LogRecords, "true or false", strconv.ParseBool)},
				{"ready_max_lag_records", p.uintf(&c.Replication.ReadyMaxLagRecords)},
				{"ready_max_lag", scalar(p, &c.Replication.ReadyMaxLag, `a duration like "10s"`, ParseDuration)},
			})
		}},
		{"metrics", func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			p.mapping(v, path, []field{
				{"per_item_max_items", p.intf(&c.Metrics.PerItemMaxItems)},
			})
		}},
		{"pools", func(v *yaml.Node, path string) { c.Pools = p.pools(v, path) }},
	})
}

func (p *parser) pools(v *yaml.Node, path string) []Pool {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(path, v, "pools: want a list of pools (- name: ...), got %s", kindName(v))
		return nil
	}
	pools := make([]Pool, len(v.Content))
	for i, pn := range v.Content {
		pn = deref(pn)
		pp := fmt.Sprintf("%s[%d]", path, i)
		p.src.lines[pp] = pn.Line
		pl := &pools[i]
		p.src.items = append(p.src.items, nil)
		seen := p.mapping(pn, pp, []field{
			{"name", p.str(&pl.Name)},
			{"items", func(v *yaml.Node, path string) { pl.Items, p.src.items[i] = p.items(v, path) }},
			{"rules", func(v *yaml.Node, path string) { pl.Rules = p.rules(v, path) }},
		})
		if pn.Kind == yaml.MappingNode && !seen["name"] {
			p.fail(pp+".name", pn, "name is missing")
		}
	}
	return pools
}

func (p *parser) items(v *yaml.Node, path string) ([]Item, []itemLines) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(path, v, "items: want a list of items (- {id: ..., quantity: ..., weight: ...}), got %s", kindName(v))
		return nil, nil
	}
	if len(v.Content) == 1 {
		if r := p.run(v.Content[0]); r != nil {
			// The whole list is one run (a generated catalog): its items
			// are the list, no copy.
			p.used++
			lines := make([]itemLines, len(r.items))
			for k := range lines {
				l := int32(r.line + k)
				lines[k] = itemLines{l, l, l, l}
			}
			return r.items, lines
		}
	}
	n := len(v.Content)
	for _, in := range v.Content {
		if r := p.run(in); r != nil {
			n += len(r.items) - 1
		}
	}
	items := make([]Item, 0, n)
	lines := make([]itemLines, 0, n)
	for _, in := range v.Content {
		if r := p.run(in); r != nil {
			p.used++
			for k, it := range r.items {
				l := int32(r.line + k)
				items = append(items, it)
				lines = append(lines, itemLines{l, l, l, l})
			}
			continue
		}
		in = deref(in)
		j := len(items)
		ip := path + "[" + strconv.Itoa(j) + "]"
		items = append(items, Item{})
		lines = append(lines, itemLines{int32(in.Line)})
		it, il := &items[j], &lines[j]
		required := func(set func(*yaml.Node, string)) func(*yaml.Node, string) {
			return func(v *yaml.Node, path string) {
				if isNull(v) {
					p.fail(path, v, "%s: empty (it is required)", display(path))
					return
				}
				set(v, path)
			}
		}
		p.item = il
		seen := p.mapping(in, ip, []field{
			{"id", required(p.str(&it.ID))},
			{"quantity", required(p.int64f(&it.Quantity, -1<<63))},
			{"weight", required(scalar(p, &it.Weight, "a number like 10 or 0.5", ParseWeight))},
			{"tier", p.str(&it.Tier)},
			{"featured", scalar(p, &it.Featured, "true or false", parseBool)},
			{"release", func(v *yaml.Node, path string) { it.Release = p.release(v, path) }},
		})
		p.item = nil
		if in.Kind != yaml.MappingNode {
			continue
		}
		for _, f := range []struct{ key, hint string }{
			{"id", ""},
			{"quantity", " (use -1 for unlimited)"},
			{"weight", ""},
		} {
			if !seen[f.key] && !p.src.bad[ip+"."+f.key] {
				p.fail(ip+"."+f.key, in, "%s is missing%s", f.key, f.hint)
			}
		}
	}
	return items, lines
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// poolPathRE splits a field path below pools into pool index, item index
// and the rest.
var poolPathRE = regexp.MustCompile(`^pools\[(\d+)\](?:\.items\[(\d+)\])?(?:\.(.*))?$`)

// display is how a field path reads in a message after its pool and item
// label: the top-level path as is ("wal.codec"), and below a pool or item
// only the field's own name ("weight").
func display(path string) string {
	if m := poolPathRE.FindStringSubmatch(path); m != nil {
		if m[3] != "" {
			return m[3]
		}
		if m[2] != "" {
			return "items[" + m[2] + "]"
		}
		return "pools[" + m[1] + "]"
	}
	return path
}

// label names the pool and item a path is in, like
// `pools[0] "default" items[2] "mud"`, or "" outside pools. A pool's or
// item's own name is left out when the path is that name (the message
// shows it).
func (c *Config) label(path string) string {
	m := poolPathRE.FindStringSubmatch(path)
	if m == nil {
		return ""
	}
	pi, _ := strconv.Atoi(m[1])
	var b strings.Builder
	b.WriteString("pools[" + m[1] + "]")
	if pi < len(c.Pools) && c.Pools[pi].Name != "" && !(m[2] == "" && m[3] == "name") {
		fmt.Fprintf(&b, " %q", c.Pools[pi].Name)
	}
	if m[2] != "" {
		b.WriteString(" items[" + m[2] + "]")
		ii, _ := strconv.Atoi(m[2])
		if pi < len(c.Pools) && ii < len(c.Pools[pi].Items) && c.Pools[pi].Items[ii].ID != "" && m[3] != "id" {
			fmt.Fprintf(&b, " %q", c.Pools[pi].Items[ii].ID)
		}
	}
	return b.String()
}

// join turns problems into one error: FieldErrors sorted by line, joined
// with errors.Join so each prints on its own line.
func (c *Config) join(probs []problem) error {
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].line < probs[j].line })
	errs := make([]error, len(probs))
	for i, pr := range probs {
		fe := &FieldError{Line: pr.line, Path: pr.path, Msg: pr.text}
		if c.src != nil && pr.line > 0 {
			fe.File = c.src.name
		}
		if l := c.label(pr.path); l != "" {
			if m := poolPathRE.FindStringSubmatch(pr.path); m[3] == "" {
				// A problem with the pool or item itself: its text
				// starts with "pools[i]" or "items[j]", which the label
				// spells out.
				fe.Msg = l + strings.TrimPrefix(pr.text, display(pr.path))
			} else {
				fe.Msg = l + ": " + pr.text
			}
		}
		errs[i] = fe
	}
	return errors.Join(errs...)
}
