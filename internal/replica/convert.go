package replica

import (
	"fmt"
	"strings"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/wal"
)

// KindName is the WALRecord.kind string of k: its wal name, upper-cased
// ("DRAW_FAILED").
func KindName(k wal.Kind) string { return strings.ToUpper(k.Name()) }

// ParseKind is the inverse of KindName.
func ParseKind(s string) (wal.Kind, error) {
	if k, ok := wal.KindByName(strings.ToLower(s)); ok && s == strings.ToUpper(s) {
		return k, nil
	}
	return 0, fmt.Errorf("replica: unknown record kind %q", s)
}

// ToProto converts a log record for the wire.
func ToProto(r *wal.Record) *rpv1.WALRecord {
	return &rpv1.WALRecord{
		Seq: r.Seq, Epoch: r.Epoch, Kind: KindName(r.Kind), Commit: r.Commit,
		RequestId: r.RequestID, Slot: r.Item, ItemId: r.ItemID, Quantity: r.Quantity,
		WeightUnits: r.Weight, Key: r.Key, Count: r.Count, User: r.User, TimeUnixMs: r.Time,
	}
}

// FromProto converts a wire record back to a log record.
func FromProto(p *rpv1.WALRecord) (wal.Record, error) {
	k, err := ParseKind(p.GetKind())
	if err != nil {
		return wal.Record{}, err
	}
	return wal.Record{
		Seq: p.GetSeq(), Epoch: p.GetEpoch(), Kind: k, Commit: p.GetCommit(),
		RequestID: p.GetRequestId(), Item: p.GetSlot(), ItemID: p.GetItemId(), Quantity: p.GetQuantity(),
		Weight: p.GetWeightUnits(), Key: p.GetKey(), Count: p.GetCount(), User: p.GetUser(), Time: p.GetTimeUnixMs(),
	}, nil
}
