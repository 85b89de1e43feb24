package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rewardpool/rewardpool/pool"
)

// The writer's form of a state (a shared Table plus the counts) and the
// streaming encoder must produce exactly the bytes Encode always wrote, so
// every snapshot, old or new, reads with the one Decode.
func TestTableFormAndStreamingWriteSameBytes(t *testing.T) {
	big := &State{Seq: 77, Epoch: 3, LastRequestID: 1 << 40}
	for i := range 20_000 { // several flushes of WriteTo's buffer
		big.Slots = append(big.Slots, pool.Slot{
			Item:    pool.Item{ID: fmt.Sprintf("item%06d", i), Quantity: int64(i%7) - 1, Weight: uint64(i + 1)},
			Removed: i%13 == 0,
		})
	}
	for i := range 3_000 {
		big.Keys = append(big.Keys, Key{Key: fmt.Sprintf("key-%d", i), Draws: []Draw{{RequestID: uint64(i + 1), Slot: int32(i%5) - 1}}})
	}
	big.Rules = `{"tiers":["ssr"]}`
	big.Players = &Players{Columns: []string{"draws", "pity.ssr"}}
	for i := range 10_000 {
		big.Players.IDs = append(big.Players.IDs, fmt.Sprintf("user%05d", i))
		big.Players.Rows = append(big.Players.Rows, uint32(i), uint32(i%90))
	}
	for _, st := range []*State{sample(), {Seq: 1, Epoch: 1}, big} {
		want := Encode(nil, st)

		table := &State{Seq: st.Seq, Epoch: st.Epoch, LastRequestID: st.LastRequestID, Keys: st.Keys,
			Rules: st.Rules, Players: st.Players,
			Table: NewTable(st.Slots), Quantities: make([]int64, len(st.Slots)),
			Slots: []pool.Slot{{Item: pool.Item{ID: "ignored", Weight: 1}}}}
		for i, s := range st.Slots {
			table.Quantities[i] = s.Quantity
		}
		if got := Encode(nil, table); !bytes.Equal(got, want) {
			t.Fatalf("seq %d: the table form encodes to other bytes than the slots", st.Seq)
		}
		var buf bytes.Buffer
		n, err := WriteTo(&buf, table)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("seq %d: WriteTo wrote %d bytes, other than Encode's %d", st.Seq, n, len(want))
		}
		got, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Fatalf("seq %d: streamed snapshot decodes to another state", st.Seq)
		}
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// A failed write fails WriteTo; Dir.WriteState writes the file Write
// wrote, and says how big it is.
func TestWriteStateWritesTheWholeSnapshot(t *testing.T) {
	st := sample()
	if _, err := WriteTo(&failAfter{n: 10}, st); err == nil {
		t.Fatal("WriteTo reported success on a failing writer")
	}
	dir := t.TempDir()
	path, size, err := In(nil, dir).WriteState(st)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(Encode(nil, st)); size != int64(want) || filepath.Base(path) != FileName(st.Seq) {
		t.Fatalf("WriteState: %s, %d bytes; want %s, %d", path, size, FileName(st.Seq), want)
	}
	got, err := Read(path)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("read back: %v", err)
	}
}
