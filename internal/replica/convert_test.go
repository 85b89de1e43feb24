package replica

import (
	"testing"

	"github.com/rewardpool/rewardpool/wal"
)

func TestConvertRoundTrip(t *testing.T) {
	recs := []wal.Record{
		{Seq: 1, Epoch: 1, Kind: wal.KindAdd, Item: 0, ItemID: "gold", Quantity: 5, Weight: 2_000_000},
		{Seq: 2, Epoch: 1, Kind: wal.KindKey, Item: -1, Key: "k", Count: 2},
		{Seq: 3, Epoch: 1, Kind: wal.KindDraw, RequestID: 1, Item: 0},
		{Seq: 4, Epoch: 1, Kind: wal.KindDrawFailed, RequestID: 2, Item: -1},
		{Seq: 5, Epoch: 1, Kind: wal.KindSet, Item: 0, ItemID: "gold", Quantity: -1, Weight: 1},
		{Seq: 6, Epoch: 1, Kind: wal.KindRemove, Item: 0, ItemID: "gold"},
		{Seq: 7, Epoch: 2, Kind: wal.KindEpoch, Item: -1, Commit: true},
		// A player's draws carry the player and the writer's clock; the
		// rules travel as a RULES record.
		{Seq: 8, Epoch: 2, Kind: wal.KindRules, Item: -1, Key: `{"pity":[{"tier":"ssr","hard":90}]}`},
		{Seq: 9, Epoch: 2, Kind: wal.KindDraw, RequestID: 3, Item: 0, User: "alice é", Time: 1_764_547_200_123},
		{Seq: 10, Epoch: 2, Kind: wal.KindDrawFailed, RequestID: 4, Item: -1, User: "bob", Time: 1_764_547_200_124, Commit: true},
	}
	for _, r := range recs {
		got, err := FromProto(ToProto(&r))
		if err != nil || got != r {
			t.Fatalf("round trip of %+v: %+v, %v", r, got, err)
		}
	}
	if _, err := ParseKind("BOGUS"); err == nil {
		t.Fatal("ParseKind accepted BOGUS")
	}
}
