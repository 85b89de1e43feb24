package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/rewardpool/rewardpool/wal"
)

// A segment is a run of frames, one per commit round. Each frame starts on
// a 512-byte boundary, so a round never rewrites a sector that an earlier,
// acknowledged round wrote, and a power cut can only damage the last round:
//
//	magic "RPJF" | body length u32 | crc32c(seed, body) u32 | body | zero padding
//
// The checksum starts from the journal's secret seed (file SEED, random,
// made once): bytes a client chose (an idempotency key, a user id) can
// hold something shaped like a frame, but never one that checks out, so a
// torn round's payload cannot pass for a later round.
//
//	body: round u64 | entries
//
// An entry is a type byte, the pool's name, then:
//
//	'B' batch:      first seq, record count, records (each: kind|commit byte,
//	                epoch, request id, zigzag slot, item id, zigzag quantity,
//	                weight, key, count, user, zigzag time)
//	'C' checkpoint: seq (the pool's own log is durable through seq)
//	'R' reset:      seq (forget the pool's earlier entries; its log ends at seq)
//
// Numbers are uvarints unless noted; strings are a uvarint length and bytes.
const (
	frameMagic  = "RPJF"
	frameHeader = 12
	sectorSize  = 512
	// maxFrame bounds a frame's body, so a damaged length cannot make a
	// reader allocate the disk.
	maxFrame = 1 << 30
	// maxName bounds a pool name in an entry.
	maxName = 4096
)

const (
	entryBatch      = 'B'
	entryCheckpoint = 'C'
	entryReset      = 'R'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errEntry is a body whose checksum matched but whose entries do not parse:
// damage, never a torn write.
var errEntry = errors.New("journal: malformed entry")

// appendBatch appends a batch entry for pool to dst.
func appendBatch(dst []byte, pool string, recs []wal.Record) []byte {
	dst = append(dst, entryBatch)
	dst = appendString(dst, pool)
	dst = binary.AppendUvarint(dst, recs[0].Seq)
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		k := byte(r.Kind) & 0x7f
		if r.Commit {
			k |= 0x80
		}
		dst = append(dst, k)
		dst = binary.AppendUvarint(dst, r.Epoch)
		dst = binary.AppendUvarint(dst, r.RequestID)
		dst = binary.AppendVarint(dst, int64(r.Item))
		dst = appendString(dst, r.ItemID)
		dst = binary.AppendVarint(dst, r.Quantity)
		dst = binary.AppendUvarint(dst, r.Weight)
		dst = appendString(dst, r.Key)
		dst = binary.AppendUvarint(dst, uint64(r.Count))
		dst = appendString(dst, r.User)
		dst = binary.AppendVarint(dst, r.Time)
	}
	return dst
}

// appendMark appends a checkpoint or reset entry.
func appendMark(dst []byte, typ byte, pool string, seq uint64) []byte {
	dst = append(dst, typ)
	dst = appendString(dst, pool)
	return binary.AppendUvarint(dst, seq)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// entry is one decoded entry.
type entry struct {
	typ  byte
	pool string
	seq  uint64       // 'C', 'R'; the first seq of a batch
	recs []wal.Record // 'B'
}

// decodeBody parses a frame body into its round and entries.
func decodeBody(body []byte) (uint64, []entry, error) {
	if len(body) < 8 {
		return 0, nil, fmt.Errorf("%w: body of %d bytes", errEntry, len(body))
	}
	round := binary.LittleEndian.Uint64(body)
	d := decoder{p: body[8:]}
	var out []entry
	for len(d.p) > 0 && d.err == nil {
		var e entry
		e.typ = d.byte()
		e.pool = d.str(maxName)
		switch e.typ {
		case entryCheckpoint, entryReset:
			e.seq = d.uvarint()
		case entryBatch:
			e.seq = d.uvarint()
			n := d.uvarint()
			if e.seq == 0 || n == 0 || n > uint64(len(d.p)) {
				d.fail("batch of %d records from seq %d", n, e.seq)
				break
			}
			e.recs = make([]wal.Record, n)
			for i := range e.recs {
				r := &e.recs[i]
				k := d.byte()
				r.Kind, r.Commit = wal.Kind(k&0x7f), k&0x80 != 0
				r.Seq = e.seq + uint64(i)
				r.Epoch = d.uvarint()
				r.RequestID = d.uvarint()
				item := d.varint()
				if item < -1 || item > 1<<31-1 {
					d.fail("item slot %d", item)
				}
				r.Item = int32(item)
				r.ItemID = d.str(1 << 16)
				r.Quantity = d.varint()
				r.Weight = d.uvarint()
				r.Key = d.str(1 << 16)
				c := d.uvarint()
				if c > 1<<32-1 {
					d.fail("count %d", c)
				}
				r.Count = uint32(c)
				r.User = d.str(1 << 16)
				r.Time = d.varint()
			}
			if d.err == nil && !e.recs[n-1].Commit {
				d.fail("batch from seq %d does not end with a commit", e.seq)
			}
		default:
			d.fail("entry type %q", e.typ)
		}
		if d.err == nil && e.pool == "" {
			d.fail("entry without a pool")
		}
		out = append(out, e)
	}
	if d.err != nil {
		return 0, nil, d.err
	}
	return round, out, nil
}

type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errEntry}, args...)...)
	}
	d.p = nil
}

func (d *decoder) byte() byte {
	if len(d.p) == 0 {
		d.fail("short entry")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) str(limit int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(d.p)) {
		d.fail("string of %d bytes", n)
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}

// appendFrame wraps body (which starts with 8 bytes reserved for the
// round) into a frame padded to a sector boundary.
func sealFrame(frame []byte, round uint64, seed uint32) []byte {
	body := frame[frameHeader:]
	binary.LittleEndian.PutUint64(body, round)
	copy(frame, frameMagic)
	binary.LittleEndian.PutUint32(frame[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(frame[8:], crc32.Update(seed, castagnoli, body))
	if pad := len(frame) % sectorSize; pad != 0 {
		frame = append(frame, make([]byte, sectorSize-pad)...)
	}
	return frame
}

// parseFrame reads the frame at the start of p (p may run past it). ok is
// false when p holds no valid frame there: a torn or damaged one, or zeros.
func parseFrame(p []byte, seed uint32) (body []byte, size int, ok bool) {
	if len(p) < frameHeader || string(p[:4]) != frameMagic {
		return nil, 0, false
	}
	n := binary.LittleEndian.Uint32(p[4:])
	if n < 8 || n > maxFrame || int64(n) > int64(len(p)-frameHeader) {
		return nil, 0, false
	}
	body = p[frameHeader : frameHeader+int(n)]
	if crc32.Update(seed, castagnoli, body) != binary.LittleEndian.Uint32(p[8:]) {
		return nil, 0, false
	}
	size = frameHeader + int(n)
	if r := size % sectorSize; r != 0 {
		size += sectorSize - r
	}
	return body, size, true
}
