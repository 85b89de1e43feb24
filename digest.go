package rewardpool

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Digest returns a deterministic digest of the pool's committed state and
// the seq it was taken at. Two engines that applied the same log records
// (a primary and its replica) have equal digests at equal seqs, so anyone
// can check that they agree.
//
// The digest covers the epoch, the last request id and every catalog slot
// (id, remaining quantity, weight, removed) in slot order. It costs one
// pass over the catalog on the writer goroutine: microseconds for a
// campaign-sized catalog, milliseconds at a million items.
func (e *Engine) Digest(ctx context.Context) (seq uint64, digest string, err error) {
	err = e.onWriter(ctx, func() {
		seq, digest = e.w.seq, e.w.digest()
	})
	return seq, digest, err
}

// StateDigest returns the committed state and its digest, taken together.
func (e *Engine) StateDigest(ctx context.Context) (st State, digest string, err error) {
	err = e.onWriter(ctx, func() {
		st, digest = e.stateCopy(), e.w.digest()
	})
	return st, digest, err
}

func (w *writerState) digest() string {
	h := sha256.New()
	var buf [8 * 4]byte
	b := binary.LittleEndian.AppendUint64(buf[:0], w.seq)
	b = binary.LittleEndian.AppendUint64(b, w.epoch)
	b = binary.LittleEndian.AppendUint64(b, w.reqID)
	b = binary.LittleEndian.AppendUint64(b, uint64(w.cat.Slots()))
	h.Write(b)
	for i := range w.cat.Slots() {
		it, removed := w.cat.Item(int32(i))
		b = binary.LittleEndian.AppendUint64(buf[:0], uint64(len(it.ID)))
		h.Write(b)
		h.Write([]byte(it.ID))
		b = binary.LittleEndian.AppendUint64(buf[:0], uint64(it.Quantity))
		b = binary.LittleEndian.AppendUint64(b, it.Weight)
		if removed {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		h.Write(b)
	}
	w.digestPlayers(h)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
