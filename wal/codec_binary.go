package wal

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// binaryCodec is the compact default format. A record is
//
//	uvarint  body length (>= 1; a zero byte here means "end of data")
//	body     kind byte, fields (below)
//	uint32   CRC32C of length + body, little endian
//
// The kind byte holds the kind in bits 0-3, flagCommit, flagEpoch and
// flagUser (a draw for a player).
// Body fields, in order:
//
//	uvarint  seq - previous seq in the segment (header first-1 at the start)
//	uvarint  epoch, only when flagEpoch (epoch differs from the previous record's)
//	draw:        uvarint request id - previous draw's; uvarint slot
//	draw failed: uvarint request id - previous draw's
//	then, for a draw of either kind with flagUser: string user; zigzag varint time
//	key:         string key; uvarint count
//	add, set:    uvarint slot; string item id; zigzag varint quantity; uvarint weight
//	remove:      uvarint slot; string item id
//	epoch:       nothing
//	rules:       string rules (JSON)
//
// where string = uvarint length + bytes and slot = uint32(Item) (so -1
// survives). Deltas are modulo 2^64, so any value round-trips; in a healthy
// log they are 1 and small. A draw with a slot >= 2^14 takes 11 bytes.
type binaryCodec struct{}

const (
	kindMask   = 0x0f
	flagCommit = 0x10
	flagEpoch  = 0x20
	flagUser   = 0x40
)

func (binaryCodec) name() string { return "binary" }

func (binaryCodec) check(r *Record) error { return nil }

func (binaryCodec) encode(dst []byte, st *codecState, r *Record) []byte {
	start := len(dst)
	dst = append(dst, 0) // body length placeholder: one byte covers bodies < 128
	bodyStart := len(dst)
	k := byte(r.Kind)
	if r.Commit {
		k |= flagCommit
	}
	if r.Epoch != st.epoch {
		k |= flagEpoch
	}
	if r.User != "" {
		k |= flagUser
	}
	dst = append(dst, k)
	dst = binary.AppendUvarint(dst, r.Seq-st.seq)
	if r.Epoch != st.epoch {
		dst = binary.AppendUvarint(dst, r.Epoch)
	}
	switch r.Kind {
	case KindDraw:
		dst = binary.AppendUvarint(dst, r.RequestID-st.req)
		dst = binary.AppendUvarint(dst, uint64(uint32(r.Item)))
	case KindDrawFailed:
		dst = binary.AppendUvarint(dst, r.RequestID-st.req)
	case KindKey:
		dst = appendBinString(dst, r.Key)
		dst = binary.AppendUvarint(dst, uint64(r.Count))
	case KindRules:
		dst = appendBinString(dst, r.Key)
	case KindAdd, KindSet:
		dst = binary.AppendUvarint(dst, uint64(uint32(r.Item)))
		dst = appendBinString(dst, r.ItemID)
		dst = binary.AppendVarint(dst, r.Quantity)
		dst = binary.AppendUvarint(dst, r.Weight)
	case KindRemove:
		dst = binary.AppendUvarint(dst, uint64(uint32(r.Item)))
		dst = appendBinString(dst, r.ItemID)
	}
	if r.User != "" {
		dst = appendBinString(dst, r.User)
		dst = binary.AppendVarint(dst, r.Time)
	}
	bodyLen := len(dst) - bodyStart
	if bodyLen < 0x80 {
		dst[start] = byte(bodyLen)
	} else {
		// Rare (long strings): the length needs more bytes; move the body.
		var lb [binary.MaxVarintLen64]byte
		m := binary.PutUvarint(lb[:], uint64(bodyLen))
		dst = append(dst, lb[:m-1]...)
		copy(dst[bodyStart+m-1:], dst[bodyStart:bodyStart+bodyLen])
		copy(dst[start:], lb[:m])
	}
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Update(0, castagnoli, dst[start:]))
	st.seq, st.epoch = r.Seq, r.Epoch
	if r.Kind == KindDraw || r.Kind == KindDrawFailed {
		st.req = r.RequestID
	}
	return dst
}

func appendBinString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func (binaryCodec) decode(p []byte, st *codecState, r *Record) (int, error) {
	if len(p) == 0 {
		return 0, errShort
	}
	if p[0] == 0 {
		return 0, errEnd
	}
	l, m := binary.Uvarint(p)
	if m == 0 {
		return 0, errShort
	}
	if m < 0 || l > maxRecordSize || l == 0 {
		return 0, &badRecord{extent: 1, reason: "bad record length"}
	}
	end := m + int(l)
	total := end + 4
	if len(p) < total {
		return 0, errShort
	}
	if crc32.Update(0, castagnoli, p[:end]) != binary.LittleEndian.Uint32(p[end:]) {
		return 0, &badRecord{extent: total, reason: "checksum mismatch"}
	}
	d := binReader{b: p[m:end]}
	k := d.b[0]
	d.b = d.b[1:]
	kind := Kind(k & kindMask)
	if k&^(kindMask|flagCommit|flagEpoch|flagUser) != 0 || kind < KindDraw || kind > maxKind ||
		(k&flagUser != 0 && kind != KindDraw && kind != KindDrawFailed) {
		return 0, &badRecord{extent: total, reason: "bad kind byte", hard: true}
	}
	*r = Record{Kind: kind, Commit: k&flagCommit != 0, Item: -1}
	r.Seq = st.seq + d.uvarint()
	r.Epoch = st.epoch
	if k&flagEpoch != 0 {
		r.Epoch = d.uvarint()
	}
	req := st.req
	switch kind {
	case KindDraw:
		r.RequestID = req + d.uvarint()
		r.Item = d.slot()
		req = r.RequestID
	case KindDrawFailed:
		r.RequestID = req + d.uvarint()
		req = r.RequestID
	case KindKey:
		r.Key = d.str()
		c := d.uvarint()
		if c > math.MaxUint32 {
			d.bad = true
		}
		r.Count = uint32(c)
	case KindRules:
		r.Key = d.str()
	case KindAdd, KindSet:
		r.Item = d.slot()
		r.ItemID = d.str()
		r.Quantity = d.varint()
		r.Weight = d.uvarint()
	case KindRemove:
		r.Item = d.slot()
		r.ItemID = d.str()
	}
	if k&flagUser != 0 {
		r.User = d.str()
		r.Time = d.varint()
		if r.User == "" {
			d.bad = true
		}
	}
	if d.bad || len(d.b) != 0 {
		return 0, &badRecord{extent: total, reason: "bad record body", hard: true}
	}
	st.seq, st.epoch, st.req = r.Seq, r.Epoch, req
	return total, nil
}

// binReader decodes body fields; errors stick in bad so the decoder reads
// straight through and checks once.
type binReader struct {
	b   []byte
	bad bool
}

func (d *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *binReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *binReader) slot() int32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.bad = true
	}
	return int32(uint32(v))
}

func (d *binReader) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
