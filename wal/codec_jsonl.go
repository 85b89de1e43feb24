package wal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/rewardpool/rewardpool/pool"
	"hash/crc32"
	"strconv"
	"unicode/utf8"
)

// jsonlCodec writes one JSON object per line, fields in a fixed order, the
// CRC32C last; it covers the line up to (not including) `,"crc":`:
//
//	{"seq":17,"epoch":1,"kind":"draw","request_id":101,"item":"gold","commit":true,"crc":"9f0a12bc"}
//
// Kinds: draw, draw_failed (with user and time for a player's draw), rules (rules: their JSON as a string), key (key, count), add and set (item, quantity,
// weight as an exact decimal), remove (item), epoch. Encoding is by hand so
// it does not allocate; decoding uses encoding/json and sets Item to -1.
type jsonlCodec struct{}

const crcField = `,"crc":"`

func (jsonlCodec) name() string { return "jsonl" }

func (jsonlCodec) check(r *Record) error {
	if hasItemID(r.Kind) && r.ItemID == "" {
		return fmt.Errorf("jsonl codec needs ItemID for %s", r.Kind)
	}
	if !utf8.ValidString(r.ItemID) || !utf8.ValidString(r.Key) || !utf8.ValidString(r.User) {
		return fmt.Errorf("jsonl codec needs valid UTF-8 in key, item id and user")
	}
	return nil
}

func (jsonlCodec) encode(dst []byte, st *codecState, r *Record) []byte {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"epoch":`...)
	dst = strconv.AppendUint(dst, r.Epoch, 10)
	dst = append(dst, `,"kind":"`...)
	dst = append(dst, kindNames[r.Kind]...) // r.Kind was checked by checkRecord
	dst = append(dst, '"')
	switch r.Kind {
	case KindDraw, KindDrawFailed:
		dst = append(dst, `,"request_id":`...)
		dst = strconv.AppendUint(dst, r.RequestID, 10)
		if r.Kind == KindDraw {
			dst = append(dst, `,"item":`...)
			dst = appendJSONString(dst, r.ItemID)
		}
		if r.User != "" {
			dst = append(dst, `,"user":`...)
			dst = appendJSONString(dst, r.User)
			dst = append(dst, `,"time":`...)
			dst = strconv.AppendInt(dst, r.Time, 10)
		}
	case KindKey:
		dst = append(dst, `,"key":`...)
		dst = appendJSONString(dst, r.Key)
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, uint64(r.Count), 10)
	case KindAdd, KindSet:
		dst = append(dst, `,"item":`...)
		dst = appendJSONString(dst, r.ItemID)
		dst = append(dst, `,"quantity":`...)
		dst = strconv.AppendInt(dst, r.Quantity, 10)
		dst = append(dst, `,"weight":`...)
		dst = pool.AppendWeight(dst, r.Weight)
	case KindRemove:
		dst = append(dst, `,"item":`...)
		dst = appendJSONString(dst, r.ItemID)
	case KindRules:
		dst = append(dst, `,"rules":`...)
		dst = appendJSONString(dst, r.Key)
	}
	dst = append(dst, `,"commit":`...)
	dst = strconv.AppendBool(dst, r.Commit)
	crc := crc32.Update(0, castagnoli, dst[start:])
	dst = append(dst, crcField...)
	dst = appendHex32(dst, crc)
	return append(dst, "\"}\n"...)
}

// appendJSONString quotes valid UTF-8 s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

type jsonRecord struct {
	Seq       uint64      `json:"seq"`
	Epoch     uint64      `json:"epoch"`
	Kind      string      `json:"kind"`
	RequestID uint64      `json:"request_id"`
	Item      string      `json:"item"`
	Key       string      `json:"key"`
	Count     uint32      `json:"count"`
	Quantity  int64       `json:"quantity"`
	Weight    json.Number `json:"weight"`
	Rules     string      `json:"rules"`
	User      string      `json:"user"`
	Time      int64       `json:"time"`
	Commit    bool        `json:"commit"`
	CRC       string      `json:"crc"`
}

func (jsonlCodec) decode(p []byte, st *codecState, r *Record) (int, error) {
	line, n, err := nextLine(p)
	if err != nil {
		return 0, err
	}
	bad := func(reason string, hard bool) (int, error) {
		return 0, &badRecord{extent: n, reason: reason, hard: hard}
	}
	i := bytes.LastIndex(line, []byte(crcField))
	if i < 0 || len(line) != i+len(crcField)+8+2 || string(line[len(line)-2:]) != `"}` {
		return bad("line has no checksum", false)
	}
	want, ok := parseHex32(line[i+len(crcField) : len(line)-2])
	if !ok || crc32.Update(0, castagnoli, line[:i]) != want {
		return bad("checksum mismatch", false)
	}
	var j jsonRecord
	if err := json.Unmarshal(line, &j); err != nil {
		return bad("bad JSON: "+err.Error(), true)
	}
	*r = Record{Seq: j.Seq, Epoch: j.Epoch, Commit: j.Commit, Item: -1}
	r.Kind, _ = KindByName(j.Kind)
	switch r.Kind {
	case KindDraw, KindDrawFailed:
		r.RequestID = j.RequestID
		if r.Kind == KindDraw {
			r.ItemID = j.Item
		}
		r.User = j.User
		if r.User != "" {
			r.Time = j.Time
		}
	case KindKey:
		r.Key, r.Count = j.Key, j.Count
	case KindAdd, KindSet:
		r.ItemID, r.Quantity = j.Item, j.Quantity
		if r.Weight, err = pool.ParseWeight(string(j.Weight)); err != nil {
			return bad(err.Error(), true)
		}
	case KindRemove:
		r.ItemID = j.Item
	case KindRules:
		r.Key = j.Rules
	case KindEpoch:
	default:
		return bad(fmt.Sprintf("unknown kind %q", j.Kind), true)
	}
	st.seq, st.epoch = r.Seq, r.Epoch
	return n, nil
}
