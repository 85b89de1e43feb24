package journal

import (
	"testing"

	"github.com/rewardpool/rewardpool/wal"
)

// A batch entry carries every field of a record, a player's draw (user and
// the writer's clock) and a RULES record included: replaying the journal
// into a pool's log must give back what the pool wrote.
func TestBatchEntryRoundTrip(t *testing.T) {
	recs := []wal.Record{
		{Seq: 7, Epoch: 1, Kind: wal.KindAdd, Item: 0, ItemID: "gold", Quantity: 5, Weight: 2_500_000},
		{Seq: 8, Epoch: 1, Kind: wal.KindRules, Item: -1, Key: `{"pity":[{"tier":"ssr","hard":90}]}`},
		{Seq: 9, Epoch: 1, Kind: wal.KindKey, Item: -1, Key: "order-1", Count: 2},
		{Seq: 10, Epoch: 1, Kind: wal.KindDraw, RequestID: 41, Item: 0, ItemID: "gold", User: "alice é", Time: 1_764_547_200_123},
		{Seq: 11, Epoch: 1, Kind: wal.KindDrawFailed, RequestID: 42, Item: -1, User: "bob", Time: 1_764_547_200_124, Commit: true},
	}
	body := make([]byte, 8)
	body = appendBatch(body, "banner", recs)
	_, entries, err := decodeBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || len(entries[0].recs) != len(recs) {
		t.Fatalf("entries %+v", entries)
	}
	for i, r := range entries[0].recs {
		if r != recs[i] {
			t.Fatalf("record %d: got %+v, want %+v", i, r, recs[i])
		}
	}
}
