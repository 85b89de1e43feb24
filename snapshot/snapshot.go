// Package snapshot writes and loads point-in-time copies of a pool's state.
//
// A snapshot bounds recovery time: start-up loads the newest valid one and
// replays only the log records after its sequence number.
//
// File format (all integers little-endian or uvarint):
//
//	"RPSNAP1\n"                         magic and version
//	uvarint seq, epoch, last request id
//	uvarint slot count, then per slot:  uvarint len, id bytes, zigzag quantity,
//	                                    uvarint weight, byte removed
//	uvarint key count, then per key:    uvarint len, key bytes, uvarint draw count,
//	                                    per draw: uvarint request id, zigzag slot (-1 = failed)
//	optional rules section (pools with player rules), all uvarints:
//	                                    len, the rules' JSON;
//	                                    column count C, per column: len, name bytes;
//	                                    player count, per player: len, id bytes, C values
//	optional pity section (only when a key's answer said why pity acted;
//	the rules section, maybe empty, is then always written before it):
//	                                    uvarint count, per key with pity: uvarint
//	                                    index into the keys, per draw: len, text
//	4 bytes CRC32C (Castagnoli) of everything before it
//
// Crash safety: a snapshot is written to a temporary file, fsynced, closed,
// renamed over its final name and the directory is fsynced, so a reader sees
// either no file or a whole one. The checksum catches damage after that;
// Load falls back to an older snapshot when the newest is damaged, which is
// why the engine keeps two.
package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/rewardpool/rewardpool/pool"
)

// ErrCorrupt is returned (wrapped) for a snapshot that fails its checksum or
// cannot be decoded.
var ErrCorrupt = errors.New("snapshot: corrupt")

const magic = "RPSNAP1\n"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// State is everything recovery needs besides the log records after Seq.
type State struct {
	Seq           uint64 // last log record included
	Epoch         uint64
	LastRequestID uint64
	Slots         []pool.Slot // the whole catalog, removed slots included
	Keys          []Key       // idempotency window, oldest first
	Rules         string      // the player rules' JSON (package gacha); "" none
	Players       *Players    // per-player rule state; nil when Rules is ""

	// Table and Quantities stand for Slots when Table is set (Slots is
	// then ignored): slot i is Table's id, weight and removed flag of i
	// with Quantities[i]. This is how the writer captures a state: the
	// table changes only with admin records, so consecutive snapshots
	// share one and copy only the counts, 8 bytes a slot instead of a
	// whole Slot (and its encoding). Decode always fills Slots.
	Table      *Table
	Quantities []int64
}

// Players is the per-player state of a pool with rules: a table of uint32
// counters, one row per player, with named columns so that a change of the
// rules between runs maps the counters that still exist.
type Players struct {
	Columns []string
	IDs     []string
	Rows    []uint32 // len(IDs) * len(Columns), row-major
	// Chunks, when Rows is nil, hold the rows instead (what the engine
	// captures without copying): player i's row is at
	// Chunks[i/ChunkRows][(i%ChunkRows)*len(Columns):]. Encode reads them;
	// Decode fills Rows.
	Chunks    [][]uint32
	ChunkRows int
}

// row returns player i's counters.
func (p *Players) row(i int) []uint32 {
	c := len(p.Columns)
	if p.Rows != nil || p.ChunkRows == 0 {
		return p.Rows[i*c : (i+1)*c]
	}
	o := (i % p.ChunkRows) * c
	return p.Chunks[i/p.ChunkRows][o : o+c]
}

// Table is the part of a catalog that only admin records change. It is
// never modified once built: a writer that sees a change builds a new one,
// so a snapshot being written can keep reading the old.
type Table struct {
	IDs     []string
	Weights []uint64
	Removed []bool
}

// NewTable copies the ids, weights and removed flags of slots.
func NewTable(slots []pool.Slot) *Table {
	t := &Table{IDs: make([]string, len(slots)), Weights: make([]uint64, len(slots)), Removed: make([]bool, len(slots))}
	for i, s := range slots {
		t.IDs[i], t.Weights[i], t.Removed[i] = s.ID, s.Weight, s.Removed
	}
	return t
}

// Len is the number of slots in the table.
func (t *Table) Len() int { return len(t.IDs) }

// Matches reports whether slot i of the table holds id, weight and
// removed. Ids are compared by content (the catalog's strings are the
// table's own, so this is mostly a pointer check).
func (t *Table) Matches(i int, id string, weight uint64, removed bool) bool {
	return i < len(t.IDs) && t.IDs[i] == id && t.Weights[i] == weight && t.Removed[i] == removed
}

// slotCount is the number of slots st holds.
func (st *State) slotCount() int {
	if st.Table != nil {
		return st.Table.Len()
	}
	return len(st.Slots)
}

// slot returns slot i of st, from Slots or from Table and Quantities.
func (st *State) slot(i int) (id string, quantity int64, weight uint64, removed bool) {
	if t := st.Table; t != nil {
		return t.IDs[i], st.Quantities[i], t.Weights[i], t.Removed[i]
	}
	s := &st.Slots[i]
	return s.ID, s.Quantity, s.Weight, s.Removed
}

// Key is one remembered idempotency key and the draws that answered it.
type Key struct {
	Key   string
	Draws []Draw
	// Pity is each draw's pity explanation as first answered (one per
	// draw), nil when none had one.
	Pity []string
}

// Draw is one answered draw: Slot is -1 when the pool was empty.
type Draw struct {
	RequestID uint64
	Slot      int32
}

// Encode appends the snapshot encoding of st to dst.
func Encode(dst []byte, st *State) []byte {
	start := len(dst)
	dst = encode(dst, st, nil)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// WriteTo writes the snapshot encoding of st to w (the same bytes as
// Encode) through a buffer of about 64 KiB, so a huge catalog is never
// encoded whole in memory. It returns the bytes written.
func WriteTo(w io.Writer, st *State) (int64, error) {
	var n int64
	var crc uint32
	var werr error
	buf := make([]byte, 0, flushAt+4096)
	flush := func(b []byte) []byte {
		if werr == nil {
			crc = crc32.Update(crc, castagnoli, b)
			var m int
			m, werr = w.Write(b)
			n += int64(m)
		}
		return b[:0]
	}
	buf = flush(encode(buf, st, flush))
	if werr != nil {
		return n, werr
	}
	m, err := w.Write(binary.LittleEndian.AppendUint32(buf, crc))
	return n + int64(m), err
}

// flushAt is the size at which WriteTo hands its buffer to the writer.
const flushAt = 64 << 10

// encode appends st's encoding, without the checksum, to dst. With flush,
// it hands dst over whenever it holds flushAt bytes or more and goes on
// with what flush returns.
func encode(dst []byte, st *State, flush func([]byte) []byte) []byte {
	more := func() {
		if flush != nil && len(dst) >= flushAt {
			dst = flush(dst)
		}
	}
	dst = append(dst, magic...)
	dst = binary.AppendUvarint(dst, st.Seq)
	dst = binary.AppendUvarint(dst, st.Epoch)
	dst = binary.AppendUvarint(dst, st.LastRequestID)
	n := st.slotCount()
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range n {
		id, quantity, weight, removed := st.slot(i)
		dst = binary.AppendUvarint(dst, uint64(len(id)))
		dst = append(dst, id...)
		dst = binary.AppendVarint(dst, quantity)
		dst = binary.AppendUvarint(dst, weight)
		if removed {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
		more()
	}
	dst = binary.AppendUvarint(dst, uint64(len(st.Keys)))
	for _, k := range st.Keys {
		dst = binary.AppendUvarint(dst, uint64(len(k.Key)))
		dst = append(dst, k.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(k.Draws)))
		for _, d := range k.Draws {
			dst = binary.AppendUvarint(dst, d.RequestID)
			dst = binary.AppendVarint(dst, int64(d.Slot))
		}
		more()
	}
	withPity := 0
	for _, k := range st.Keys {
		if k.Pity != nil {
			withPity++
		}
	}
	if p := st.Players; p != nil || st.Rules != "" || withPity > 0 {
		if p == nil {
			p = &Players{}
		}
		dst = binary.AppendUvarint(dst, uint64(len(st.Rules)))
		dst = append(dst, st.Rules...)
		dst = binary.AppendUvarint(dst, uint64(len(p.Columns)))
		for _, c := range p.Columns {
			dst = binary.AppendUvarint(dst, uint64(len(c)))
			dst = append(dst, c...)
		}
		dst = binary.AppendUvarint(dst, uint64(len(p.IDs)))
		for i, id := range p.IDs {
			dst = binary.AppendUvarint(dst, uint64(len(id)))
			dst = append(dst, id...)
			for _, v := range p.row(i) {
				dst = binary.AppendUvarint(dst, uint64(v))
			}
			more()
		}
	}
	if withPity > 0 {
		dst = binary.AppendUvarint(dst, uint64(withPity))
		for i, k := range st.Keys {
			if k.Pity == nil {
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(i))
			for j := range k.Draws {
				s := ""
				if j < len(k.Pity) {
					s = k.Pity[j]
				}
				dst = binary.AppendUvarint(dst, uint64(len(s)))
				dst = append(dst, s...)
			}
			more()
		}
	}
	return dst
}

// Decode parses a snapshot written by Encode. It checks the checksum first,
// so damaged bytes are reported as ErrCorrupt rather than misread.
func Decode(b []byte) (*State, error) {
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := decoder{b: body[len(magic):]}
	st := &State{Seq: d.uvarint(), Epoch: d.uvarint(), LastRequestID: d.uvarint()}
	n := d.count(1 + 1 + 1 + 1)
	if n > 0 {
		st.Slots = make([]pool.Slot, n)
	}
	for i := range st.Slots {
		s := &st.Slots[i]
		s.ID = d.str()
		s.Quantity = d.varint()
		s.Weight = d.uvarint()
		switch d.byte() {
		case 0:
		case 1:
			s.Removed = true
		default:
			d.fail("removed flag")
		}
	}
	n = d.count(1 + 1)
	if n > 0 {
		st.Keys = make([]Key, n)
	}
	for i := range st.Keys {
		k := &st.Keys[i]
		k.Key = d.str()
		m := d.count(2)
		if m == 0 {
			d.fail("idempotency key without draws")
		}
		k.Draws = make([]Draw, m)
		for j := range k.Draws {
			k.Draws[j] = Draw{RequestID: d.uvarint(), Slot: int32(d.varint())}
		}
	}
	if len(d.b) > 0 && d.err == nil {
		st.Rules = d.str()
		p := &Players{}
		nc := d.count(1)
		for range nc {
			p.Columns = append(p.Columns, d.str())
		}
		np := d.count(1 + nc)
		p.IDs = make([]string, 0, np)
		p.Rows = make([]uint32, 0, np*nc)
		for range np {
			p.IDs = append(p.IDs, d.str())
			for range nc {
				v := d.uvarint()
				if v > 1<<32-1 {
					d.fail("player counter")
				}
				p.Rows = append(p.Rows, uint32(v))
			}
		}
		st.Players = p
	}
	if len(d.b) > 0 && d.err == nil {
		n := d.count(1 + 1)
		last := -1
		for range n {
			i := d.uvarint()
			if d.err != nil || i >= uint64(len(st.Keys)) || int(i) <= last {
				d.fail("pity key index")
				break
			}
			last = int(i)
			k := &st.Keys[i]
			k.Pity = make([]string, len(k.Draws))
			for j := range k.Pity {
				k.Pity[j] = d.str()
			}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return st, nil
}

// decoder reads fields and remembers the first error, so Decode reads
// straight through and checks once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("flag")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads an element count and bounds it by the bytes left, given the
// smallest encoding of one element, so a damaged count cannot make Decode
// allocate gigabytes.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail("count")
		return 0
	}
	return int(n)
}
