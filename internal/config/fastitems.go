package config

import (
	"bytes"
	"strconv"

	"gopkg.in/yaml.v3"
)

// A catalog of a million items is generated, one flow mapping a line:
//
//	      - {id: item0000001, quantity: 1000000000, weight: 37}
//
// yaml.v3 builds seven nodes of about 200 bytes for each such line and
// takes tens of seconds over them. fastItems reads these lines directly
// instead: each run of consecutive such lines at one indentation is cut
// out of the text and replaced by one placeholder list element (a quoted
// string) on the run's first line and empty lines after it, so every other
// line keeps its number and YAML still sees the structure around the run.
// The parser swaps each placeholder it meets in a pool's items list for
// the run's items. Parse falls back to the ordinary path for the whole
// file if any placeholder lands anywhere else (inside a block scalar, in
// a list that is not an items list): the shortcut never changes what a
// file means.
//
// Only lines whose meaning is plain are taken: the keys id, quantity and
// weight once each, in any order; an id of letters, digits and _ . -
// (not a YAML null); a decimal quantity without leading zeros; a weight
// ParseWeight accepts; no comments, tabs or quotes. Anything else is left
// to YAML, with its usual error messages.

// itemRun is one run of one-line items lifted out of the text.
type itemRun struct {
	line  int    // 1-based line of the first item (and of the placeholder)
	value string // the placeholder's value
	items []Item
}

// fastItems returns data with its runs of one-line items replaced by
// placeholders, and the runs by the line of their placeholder. It returns
// no runs (and data unchanged) when there are none.
func fastItems(data []byte) ([]byte, map[int]*itemRun) {
	var (
		out    []byte
		runs   map[int]*itemRun
		cur    *itemRun
		indent = -1
		copied int // data[:copied] is in out
	)
	line := 0
	for off := 0; off < len(data); {
		line++
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			end += off
			next = end + 1
		} else {
			end = len(data)
		}
		ind, it, ok := flowItem(data[off:end])
		if ok && cur != nil && ind == indent {
			cur.items = append(cur.items, it)
			// The line becomes empty: keep the newline before it, drop
			// its text.
			out = append(out, data[copied:off]...)
			copied = end
			off = next
			continue
		}
		cur, indent = nil, -1
		if ok {
			if runs == nil {
				runs = map[int]*itemRun{}
			}
			cur = &itemRun{line: line, value: "\x00items " + strconv.Itoa(line), items: []Item{it}}
			runs[line] = cur
			indent = ind
			out = append(out, data[copied:off]...)
			out = append(out, data[off:off+ind]...)
			out = append(out, "- \"\\0items "...)
			out = strconv.AppendInt(out, int64(line), 10)
			out = append(out, '"')
			copied = end
		} else if copied < off {
			// data[copied:off] is the newlines of lifted lines.
			out = append(out, data[copied:off]...)
			copied = off
		}
		off = next
	}
	if runs == nil {
		return data, nil
	}
	out = append(out, data[copied:]...)
	return out, runs
}

// run returns the run whose placeholder n is, or nil.
func (p *parser) run(n *yaml.Node) *itemRun {
	if p.runs == nil || n.Kind != yaml.ScalarNode || n.Style != yaml.DoubleQuotedStyle {
		return nil
	}
	if r := p.runs[n.Line]; r != nil && n.Value == r.value {
		return r
	}
	return nil
}

// flowItem parses `<spaces>- {id: X, quantity: N, weight: W}` (keys in
// any order, spaces flexible) and returns the indentation of the dash.
func flowItem(l []byte) (indent int, it Item, ok bool) {
	i := 0
	for i < len(l) && l[i] == ' ' {
		i++
	}
	indent = i
	if !bytes.HasPrefix(l[i:], []byte("- {")) {
		return 0, it, false
	}
	i += 3
	var seen [3]bool
	for k := 0; k < 3; k++ {
		for i < len(l) && l[i] == ' ' {
			i++
		}
		j := i
		for j < len(l) && l[j] >= 'a' && l[j] <= 'z' {
			j++
		}
		key := string(l[i:j]) // no allocation: compared, not kept
		if j+1 >= len(l) || l[j] != ':' || l[j+1] != ' ' {
			return 0, it, false
		}
		i = j + 2
		for i < len(l) && l[i] == ' ' {
			i++
		}
		j = i
		for j < len(l) && l[j] != ',' && l[j] != '}' && l[j] != ' ' {
			j++
		}
		val := l[i:j]
		switch f := itemField(key) - 1; {
		case f < 0 || seen[f]:
			return 0, it, false
		case f == 0:
			if !plainID(val) {
				return 0, it, false
			}
			it.ID = string(val)
			seen[0] = true
		case f == 1:
			q, good := decimal(val)
			if !good {
				return 0, it, false
			}
			it.Quantity = q
			seen[1] = true
		default:
			if len(val) == 0 || bytes.IndexFunc(val, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }) >= 0 {
				return 0, it, false
			}
			w, err := ParseWeight(string(val))
			if err != nil {
				return 0, it, false
			}
			it.Weight = w
			seen[2] = true
		}
		for j < len(l) && l[j] == ' ' {
			j++
		}
		want := byte(',')
		if k == 2 {
			want = '}'
		}
		if j >= len(l) || l[j] != want {
			return 0, it, false
		}
		i = j + 1
	}
	for i < len(l) && l[i] == ' ' {
		i++
	}
	return indent, it, i == len(l)
}

// plainID reports whether v reads as the same string in YAML as it is
// written: letters, digits, _ . - and not starting with - or . (which
// could start other YAML syntax), and not one of YAML's nulls.
func plainID(v []byte) bool {
	if len(v) == 0 || v[0] == '-' || v[0] == '.' {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	switch string(v) {
	case "null", "Null", "NULL":
		return false
	}
	return true
}

// decimal parses -?[1-9][0-9]* or 0 (what YAML reads as that integer).
func decimal(v []byte) (int64, bool) {
	d := v
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || (d[0] == '0' && len(d) > 1) || (d[0] == '0' && len(v) > 1) {
		return 0, false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	x, err := strconv.ParseInt(string(v), 10, 64)
	return x, err == nil
}
