package wal

import "testing"

// Kind names are on disk (jsonl), in logs and on the wire: each kind has
// one, and each name maps back.
func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for k := KindDraw; k <= KindEpoch; k++ {
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
