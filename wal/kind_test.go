package wal

import "testing"

// Kind names are on disk (jsonl), in logs and on the wire: each kind has
// one, and each name maps back.
func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for k := KindDraw; k <= maxKind; k++ {
		name := k.Name()
		if seen[name] {
			t.Fatalf("name %q used twice", name)
		}
		seen[name] = true
		if back, ok := KindByName(name); !ok || back != k {
			t.Fatalf("KindByName(%q) = %v, %v; want %v", name, back, ok, k)
		}
	}
	if _, ok := KindByName("nonsense"); ok {
		t.Fatal("unknown name accepted")
	}
	if got := Kind(99).Name(); got != "kind_99" {
		t.Fatalf("Kind(99).Name() = %q", got)
	}
}

// rulesRecord is a RULES record whose JSON needs quoting in every codec.
func rulesRecord(seq uint64) Record {
	return Record{Seq: seq, Epoch: 1, Kind: KindRules, Item: -1, Commit: true,
		Key: `{"pity":[{"tier":"ssr \"x\" é","hard":90}]}`}
}

// A RULES record round-trips through every codec, and an empty one (rules
// removed) too.
func TestRulesRecordRoundTrip(t *testing.T) {
	for _, c := range []codec{binaryCodec{}, textCodec{}, jsonlCodec{}} {
		for _, r := range []Record{rulesRecord(17), {Seq: 17, Epoch: 1, Kind: KindRules, Item: -1}} {
			if err := checkRecord(c, &r); err != nil {
				t.Fatalf("%s: check: %v", c.name(), err)
			}
			st := codecState{seq: 16, epoch: 1}
			b := c.encode(nil, &st, &r)
			st = codecState{seq: 16, epoch: 1}
			var got Record
			if n, err := c.decode(b, &st, &got); err != nil || n != len(b) || got != r {
				t.Fatalf("%s: %+v -> %q -> %+v, %v", c.name(), r, b, got, err)
			}
		}
	}
	if rr := rulesRecord(1); rr.String() != `RULES "{\"pity\":[{\"tier\":\"ssr \\\"x\\\" é\",\"hard\":90}]}"` {
		t.Errorf("String() = %s", rr.String())
	}
}
