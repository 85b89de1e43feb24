package wal

import (
	"bytes"
	"fmt"
	"github.com/rewardpool/rewardpool/pool"
	"hash/crc32"
	"strconv"
	"strings"
)

// textCodec writes one line per record: the canonical form (Record.String),
// a tab, then seq, epoch, commit flag (C or -) and the CRC32C of everything
// before the CRC, as 8 hex digits:
//
//	DRAW 101 gold\t17 1 C 9f0a12bc\n
//
// A draw for a player adds the writer's clock and the quoted user:
//
//	DRAW 101 gold @1764547200000 "alice"\t18 1 C 0c1d2e3f\n
//
// Item ids must not contain whitespace or control bytes (the engine's rule);
// keys are quoted with strconv.Quote. Decoding sets Item to -1.
type textCodec struct{}

func (textCodec) name() string { return "text" }

func (textCodec) check(r *Record) error {
	if !hasItemID(r.Kind) {
		return nil
	}
	if r.ItemID == "" {
		return fmt.Errorf("text codec needs ItemID for %s", r.Kind)
	}
	for i := 0; i < len(r.ItemID); i++ {
		if c := r.ItemID[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("item id %q contains whitespace or a control byte", r.ItemID)
		}
	}
	if r.Kind == KindDraw && r.ItemID == "FAILED" {
		return fmt.Errorf(`item id "FAILED" reads as a failed draw in the text codec`)
	}
	return nil
}

func (textCodec) encode(dst []byte, st *codecState, r *Record) []byte {
	start := len(dst)
	dst = appendCanonical(dst, r)
	dst = append(dst, '\t')
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, r.Epoch, 10)
	if r.Commit {
		dst = append(dst, " C "...)
	} else {
		dst = append(dst, " - "...)
	}
	dst = appendHex32(dst, crc32.Update(0, castagnoli, dst[start:]))
	return append(dst, '\n')
}

// appendCanonical appends what r.String() returns, without allocating.
func appendCanonical(dst []byte, r *Record) []byte {
	switch r.Kind {
	case KindDraw:
		dst = append(dst, "DRAW "...)
		dst = strconv.AppendUint(dst, r.RequestID, 10)
		dst = append(dst, ' ')
		dst = append(dst, r.ItemID...)
	case KindDrawFailed:
		dst = append(dst, "DRAW "...)
		dst = strconv.AppendUint(dst, r.RequestID, 10)
		dst = append(dst, " FAILED"...)
	case KindKey:
		dst = append(dst, "KEY "...)
		dst = strconv.AppendQuote(dst, r.Key)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(r.Count), 10)
	case KindAdd, KindSet:
		if r.Kind == KindAdd {
			dst = append(dst, "ADD "...)
		} else {
			dst = append(dst, "SET "...)
		}
		dst = append(dst, r.ItemID...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, r.Quantity, 10)
		dst = append(dst, ' ')
		dst = pool.AppendWeight(dst, r.Weight)
	case KindRemove:
		dst = append(dst, "REMOVE "...)
		dst = append(dst, r.ItemID...)
	case KindEpoch:
		dst = append(dst, "EPOCH "...)
		dst = strconv.AppendUint(dst, r.Epoch, 10)
	case KindRules:
		dst = append(dst, "RULES "...)
		dst = strconv.AppendQuote(dst, r.Key)
	}
	if r.User != "" {
		dst = append(dst, " @"...)
		dst = strconv.AppendInt(dst, r.Time, 10)
		dst = append(dst, ' ')
		dst = strconv.AppendQuote(dst, r.User)
	}
	return dst
}

// nextLine finds the line at the start of p for the line codecs. A line
// never contains a zero byte, so a zero byte where a line starts is the end
// of data (mmap's zero-filled tail) and one inside a line is a torn write.
func nextLine(p []byte) (line []byte, n int, err error) {
	if len(p) == 0 {
		return nil, 0, errShort
	}
	if p[0] == 0 {
		return nil, 0, errEnd
	}
	window := p[:min(len(p), maxRecordSize)]
	i := bytes.IndexByte(window, '\n')
	if i < 0 {
		if z := bytes.IndexByte(window, 0); z >= 0 {
			return nil, 0, &badRecord{extent: z, reason: "line cut short", atZero: true}
		}
		if len(window) == maxRecordSize {
			return nil, 0, &badRecord{extent: maxRecordSize, reason: "line too long"}
		}
		return nil, 0, errShort
	}
	if z := bytes.IndexByte(window[:i], 0); z >= 0 {
		return nil, 0, &badRecord{extent: z, reason: "zero byte in line", atZero: true}
	}
	return p[:i], i + 1, nil
}

func (textCodec) decode(p []byte, st *codecState, r *Record) (int, error) {
	line, n, err := nextLine(p)
	if err != nil {
		return 0, err
	}
	bad := func(reason string, hard bool) (int, error) {
		return 0, &badRecord{extent: n, reason: reason, hard: hard}
	}
	// Suffix: "\t<seq> <epoch> <C|-> <crc>"; the CRC comes first so that a
	// torn line is told from a wrong one.
	if len(line) < 9 || line[len(line)-9] != ' ' {
		return bad("line has no checksum", false)
	}
	want, ok := parseHex32(line[len(line)-8:])
	if !ok || crc32.Update(0, castagnoli, line[:len(line)-8]) != want {
		return bad("checksum mismatch", false)
	}
	body := string(line[:len(line)-9])
	tab := strings.LastIndexByte(body, '\t')
	if tab < 0 {
		return bad("line has no tab", true)
	}
	canon, suffix := body[:tab], strings.Split(body[tab+1:], " ")
	if len(suffix) != 3 || (suffix[2] != "C" && suffix[2] != "-") {
		return bad("bad line suffix", true)
	}
	*r = Record{Item: -1, Commit: suffix[2] == "C"}
	var e1, e2 error
	r.Seq, e1 = strconv.ParseUint(suffix[0], 10, 64)
	r.Epoch, e2 = strconv.ParseUint(suffix[1], 10, 64)
	if e1 != nil || e2 != nil {
		return bad("bad seq or epoch", true)
	}
	if err := parseCanonical(canon, r); err != nil {
		return bad(err.Error(), true)
	}
	st.seq, st.epoch = r.Seq, r.Epoch
	return n, nil
}

// parseUser parses the "@<time> <quoted user>" tail of a DRAW line.
func parseUser(s string, r *Record) error {
	ts, q, ok := strings.Cut(s, " ")
	if !ok || len(ts) < 2 || ts[0] != '@' {
		return fmt.Errorf("bad DRAW user")
	}
	t, err := strconv.ParseInt(ts[1:], 10, 64)
	if err != nil || strconv.FormatInt(t, 10) != ts[1:] {
		return fmt.Errorf("bad DRAW time %q", ts)
	}
	qp, err := strconv.QuotedPrefix(q)
	if err != nil || qp != q || q[0] != '"' {
		return fmt.Errorf("bad DRAW user %q", q)
	}
	u, err := strconv.Unquote(q)
	if err != nil || u == "" || strconv.Quote(u) != q {
		return fmt.Errorf("bad DRAW user %q", q)
	}
	r.User, r.Time = u, t
	return nil
}

// parseCanonical parses the Record.String() form into r.
func parseCanonical(s string, r *Record) error {
	verb, rest, _ := strings.Cut(s, " ")
	var err error
	switch verb {
	case "DRAW":
		id, item, ok := strings.Cut(rest, " ")
		if !ok || item == "" {
			return fmt.Errorf("bad DRAW line")
		}
		if item, rest, ok = strings.Cut(item, " "); ok {
			if err := parseUser(rest, r); err != nil {
				return err
			}
		}
		if item == "" {
			return fmt.Errorf("bad DRAW line")
		}
		if r.RequestID, err = strconv.ParseUint(id, 10, 64); err != nil {
			return fmt.Errorf("bad DRAW request id %q", id)
		}
		if item == "FAILED" {
			r.Kind = KindDrawFailed
		} else {
			r.Kind, r.ItemID = KindDraw, item
		}
	case "KEY":
		q, err := strconv.QuotedPrefix(rest)
		if err != nil || len(rest) < len(q)+2 || rest[len(q)] != ' ' {
			return fmt.Errorf("bad KEY line")
		}
		r.Kind = KindKey
		r.Key, _ = strconv.Unquote(q)
		c, err := strconv.ParseUint(rest[len(q)+1:], 10, 32)
		if err != nil {
			return fmt.Errorf("bad KEY count")
		}
		r.Count = uint32(c)
	case "ADD", "SET":
		f := strings.Split(rest, " ")
		if len(f) != 3 || f[0] == "" {
			return fmt.Errorf("bad %s line", verb)
		}
		r.Kind = KindAdd
		if verb == "SET" {
			r.Kind = KindSet
		}
		r.ItemID = f[0]
		if r.Quantity, err = strconv.ParseInt(f[1], 10, 64); err != nil {
			return fmt.Errorf("bad %s quantity %q", verb, f[1])
		}
		if r.Weight, err = pool.ParseWeight(f[2]); err != nil {
			return err
		}
	case "REMOVE":
		if rest == "" || strings.Contains(rest, " ") {
			return fmt.Errorf("bad REMOVE line")
		}
		r.Kind, r.ItemID = KindRemove, rest
	case "RULES":
		q, err := strconv.QuotedPrefix(rest)
		if err != nil || q != rest || q[0] != '"' {
			return fmt.Errorf("bad RULES line")
		}
		r.Kind = KindRules
		r.Key, _ = strconv.Unquote(q)
	case "EPOCH":
		e, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || e != r.Epoch {
			return fmt.Errorf("bad EPOCH line")
		}
		r.Kind = KindEpoch
	default:
		return fmt.Errorf("unknown verb %q", verb)
	}
	return nil
}
