package wal

import (
	"errors"
	"fmt"
)

// A codec turns records into bytes and back. Each segment is written by one
// codec, named in its header. Encoding must not allocate: it is on the
// engine's hot path.
type codec interface {
	name() string
	// check rejects a record the codec cannot write faithfully.
	check(r *Record) error
	// encode appends r to dst and advances st.
	encode(dst []byte, st *codecState, r *Record) []byte
	// decode reads one record from p, which starts at a record boundary,
	// and returns its length. Errors: errEnd (a zero byte where a record
	// would start: end of data), errShort (p holds only a prefix of a
	// record), *badRecord (the record is damaged). st advances only on
	// success.
	decode(p []byte, st *codecState, r *Record) (int, error)
}

// codecState is what a codec carries from one record to the next inside a
// segment. It starts fresh at each segment, so a segment decodes alone.
type codecState struct {
	seq   uint64 // seq of the previous record (header first-1 at the start)
	epoch uint64 // epoch of the previous record (header epoch at the start)
	req   uint64 // request id of the previous draw (0 at the start)
}

func newCodecState(h header) codecState { return codecState{seq: h.first - 1, epoch: h.epoch} }

var (
	errEnd   = errors.New("end of data")
	errShort = errors.New("record runs past the end of the data")
)

// badRecord is a damaged record as a codec sees it.
type badRecord struct {
	extent int    // bytes the record claims from its start (>= 1)
	reason string // what is wrong
	hard   bool   // the checksum matched: this is not a torn write
	atZero bool   // the record stops at a zero byte (line codecs): extent ends there
}

func (e *badRecord) Error() string { return e.reason }

const (
	// maxRecordSize bounds one encoded record, so a damaged length field
	// cannot make a reader buffer the whole file.
	maxRecordSize = 1 << 20
	// maxStringSize bounds Key and ItemID.
	maxStringSize = 1 << 16
)

func codecByName(name string) codec {
	switch name {
	case "binary":
		return binaryCodec{}
	case "text":
		return textCodec{}
	case "jsonl":
		return jsonlCodec{}
	}
	return nil
}

// checkRecord is the codec-independent part of Append's validation.
func checkRecord(c codec, r *Record) error {
	if r.Kind < KindDraw || r.Kind > maxKind {
		return fmt.Errorf("kind %d is not a known kind", r.Kind)
	}
	if r.Epoch == 0 {
		return fmt.Errorf("epoch is 0, want >= 1")
	}
	if len(r.Key) > maxStringSize || len(r.ItemID) > maxStringSize || len(r.User) > maxStringSize {
		return fmt.Errorf("key, item id or user longer than %d bytes", maxStringSize)
	}
	if r.User != "" && r.Kind != KindDraw && r.Kind != KindDrawFailed {
		return fmt.Errorf("a user on a %s record", r.Kind.Name())
	}
	return c.check(r)
}

func cutByte(s string, c byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

const hexDigits = "0123456789abcdef"

// appendHex32 appends v as 8 lowercase hex digits.
func appendHex32(dst []byte, v uint32) []byte {
	for i := 28; i >= 0; i -= 4 {
		dst = append(dst, hexDigits[v>>uint(i)&0xf])
	}
	return dst
}

// parseHex32 parses exactly 8 lowercase hex digits.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// hasItemID reports whether kind k carries an item id in the text codecs.
func hasItemID(k Kind) bool {
	return k == KindDraw || k == KindAdd || k == KindSet || k == KindRemove
}
