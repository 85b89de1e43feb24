package wal

import (
	"fmt"

	"github.com/rewardpool/rewardpool/pool"
)

// Kind says what a record means. The numbers are part of the binary format:
// never renumber a kind, only add new ones.
type Kind uint8

const (
	// KindDraw is a successful draw: RequestID took one unit of Item/ItemID.
	KindDraw Kind = 1
	// KindDrawFailed is a draw that found the pool empty. It still took
	// RequestID, so ids stay unique across the log.
	KindDrawFailed Kind = 2
	// KindKey marks the next Count draw records (KindDraw or KindDrawFailed)
	// as the answer to idempotency key Key.
	KindKey Kind = 3
	// KindAdd adds item ItemID with Quantity and Weight. The new item takes
	// the next free catalog slot, so Item is implied by replay order; it is
	// carried anyway so a reader can check it.
	KindAdd Kind = 4
	// KindSet sets Quantity and Weight of the existing item Item/ItemID.
	KindSet Kind = 5
	// KindRemove removes item Item/ItemID from the catalog. Its slot stays
	// reserved so later records keep their meaning.
	KindRemove Kind = 6
	// KindEpoch starts epoch Epoch (a replica promotion).
	KindEpoch Kind = 7
	// KindRules replaces the pool's player rules with Key, their JSON form
	// (package gacha; "" removes them). Players' counters are kept by name.
	KindRules Kind = 8

	maxKind = KindRules
)

// kindNames are the stable names of the kinds: the jsonl codec's "kind",
// the log sink's and (upper-cased) the replication protocol's.
var kindNames = [...]string{KindDraw: "draw", KindDrawFailed: "draw_failed", KindKey: "key",
	KindAdd: "add", KindSet: "set", KindRemove: "remove", KindEpoch: "epoch", KindRules: "rules"}

// Name returns k's stable lower-case name, e.g. "draw_failed".
func (k Kind) Name() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind_%d", uint8(k))
}

// KindByName is the inverse of Name; ok is false for an unknown name.
func KindByName(name string) (k Kind, ok bool) {
	for i, n := range kindNames {
		if n != "" && n == name {
			return Kind(i), true
		}
	}
	return 0, false
}

// String returns the verb the text codec uses for k.
func (k Kind) String() string {
	switch k {
	case KindDraw, KindDrawFailed:
		return "DRAW"
	case KindKey:
		return "KEY"
	case KindAdd:
		return "ADD"
	case KindSet:
		return "SET"
	case KindRemove:
		return "REMOVE"
	case KindEpoch:
		return "EPOCH"
	case KindRules:
		return "RULES"
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// Record is one entry of the log. Which fields matter depends on Kind.
//
// Item and ItemID name the same catalog slot. Encoders take what their
// format needs (the binary codec writes Item, the text codecs ItemID);
// decoders fill what the format holds and set Item to -1 when it only
// knows ItemID. The engine resolves the other before applying a record.
type Record struct {
	Seq    uint64 // position in the log, 1-based, consecutive
	Epoch  uint64 // promotion counter the record was written in, >= 1
	Kind   Kind
	Commit bool // last record of a write batch; recovery cuts a tail back to one

	RequestID uint64 // KindDraw, KindDrawFailed
	Item      int32  // catalog slot; -1 when not known
	ItemID    string // KindDraw, KindAdd, KindSet, KindRemove
	Quantity  int64  // KindAdd, KindSet; -1 means unlimited
	Weight    uint64 // KindAdd, KindSet; in units of 1e-6
	Key       string // KindKey; KindRules: the rules' JSON
	Count     uint32 // KindKey
	// User is the player a draw was for (KindDraw, KindDrawFailed; "" for
	// none), Time the writer's clock when it decided the draw, in Unix
	// milliseconds: per-player rules that depend on the day replay with
	// the logged time, never the replaying node's. Time is logged only
	// with a user.
	User string
	Time int64
}

// String renders r in the canonical text form without framing,
// e.g. "DRAW 101 gold" or "DRAW 102 FAILED".
func (r *Record) String() string {
	switch r.Kind {
	case KindDraw, KindDrawFailed:
		return string(appendCanonical(nil, r))
	case KindKey:
		return fmt.Sprintf("KEY %q %d", r.Key, r.Count)
	case KindAdd:
		return fmt.Sprintf("ADD %s %d %s", r.ItemID, r.Quantity, pool.FormatWeight(r.Weight))
	case KindSet:
		return fmt.Sprintf("SET %s %d %s", r.ItemID, r.Quantity, pool.FormatWeight(r.Weight))
	case KindRemove:
		return fmt.Sprintf("REMOVE %s", r.ItemID)
	case KindEpoch:
		return fmt.Sprintf("EPOCH %d", r.Epoch)
	case KindRules:
		return fmt.Sprintf("RULES %q", r.Key)
	}
	return r.Kind.String()
}
