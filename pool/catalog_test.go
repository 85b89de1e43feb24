package pool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func w(whole uint64) uint64 { return whole * WeightUnit }

// checkCatalog verifies the catalog's internal consistency: the selector
// holds each slot's effective weight, the id index names every slot, and
// Total, Items and Lookup agree with the slots.
func checkCatalog(t *testing.T, c *Catalog) {
	t.Helper()
	if c.sel.Len() != c.Slots() {
		t.Fatalf("selector has %d entries, catalog %d slots", c.sel.Len(), c.Slots())
	}
	var total uint64
	var live []Item
	for i := 0; i < c.Slots(); i++ {
		slot := int32(i)
		it, removed := c.Item(slot)
		want := it.Weight
		if removed || it.Quantity == 0 {
			want = 0
		} else {
			total += it.Weight
		}
		if !removed {
			live = append(live, it)
		}
		if got := c.sel.Weight(i); got != want {
			t.Fatalf("slot %d (%+v removed=%v): selector weight %d, want %d", i, it, removed, got, want)
		}
		if c.Available(slot) != (want > 0) {
			t.Fatalf("slot %d: Available = %v, want %v", i, !(want > 0), want > 0)
		}
		got, ok := c.Lookup(it.ID)
		if removed && ok {
			t.Fatalf("Lookup(%q) found removed slot %d", it.ID, i)
		}
		if !removed && (!ok || got != slot) {
			t.Fatalf("Lookup(%q) = %d, %v; want %d", it.ID, got, ok, i)
		}
		if c.ids[it.ID] != slot {
			t.Fatalf("id index: %q -> %d, want %d", it.ID, c.ids[it.ID], i)
		}
	}
	if len(c.ids) != c.Slots() {
		t.Fatalf("id index has %d entries for %d slots", len(c.ids), c.Slots())
	}
	if c.Total() != total {
		t.Fatalf("Total() = %d, want %d", c.Total(), total)
	}
	items := c.Items()
	if len(items) != len(live) || (len(live) > 0 && !reflect.DeepEqual(items, live)) {
		t.Fatalf("Items() = %v, want %v", items, live)
	}
}

func mustNew(t *testing.T, items ...Item) *Catalog {
	t.Helper()
	c, err := New(items)
	if err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, c)
	return c
}

func TestValidateItem(t *testing.T) {
	tests := []struct {
		name    string
		it      Item
		wantMsg string // empty: valid
	}{
		{"ok", Item{"gold", 5, w(1)}, ""},
		{"unlimited", Item{"gold", Unlimited, 1}, ""},
		{"zero stock", Item{"gold", 0, MaxWeight}, ""},
		{"unicode id", Item{"金币-★", 1, 1}, ""},
		{"max id", Item{strings.Repeat("x", 256), 1, 1}, ""},
		{"empty id", Item{"", 1, 1}, "empty"},
		{"long id", Item{strings.Repeat("x", 257), 1, 1}, "longer than 256"},
		{"space", Item{"a b", 1, 1}, "whitespace"},
		{"tab", Item{"a\tb", 1, 1}, "whitespace"},
		{"newline", Item{"a\n", 1, 1}, "whitespace"},
		{"nbsp", Item{"a\u00a0b", 1, 1}, "whitespace"},
		{"control", Item{"a\x00b", 1, 1}, "control"},
		{"del", Item{"a\x7fb", 1, 1}, "control"},
		{"bad utf8", Item{"a\xffb", 1, 1}, "UTF-8"},
		{"quantity", Item{"gold", -2, 1}, "quantity -2"},
		{"zero weight", Item{"gold", 1, 0}, "weight is zero"},
		{"heavy", Item{"gold", 1, MaxWeight + 1}, "maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateItem(tt.it)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("ValidateItem(%+v) = %v", tt.it, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidItem) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("ValidateItem(%+v) = %v; want ErrInvalidItem mentioning %q", tt.it, err, tt.wantMsg)
			}
		})
	}
}

func TestNew(t *testing.T) {
	c := mustNew(t, Item{"a", 1, w(1)}, Item{"b", Unlimited, 500_000}, Item{"c", 0, w(3)})
	if c.Slots() != 3 || c.Total() != w(1)+500_000 {
		t.Fatalf("Slots=%d Total=%d", c.Slots(), c.Total())
	}
	if slot, ok := c.Lookup("b"); !ok || slot != 1 {
		t.Fatalf("Lookup(b) = %d, %v", slot, ok)
	}
	if _, ok := c.Lookup("zzz"); ok {
		t.Fatal("Lookup of unknown id succeeded")
	}

	empty := mustNew(t)
	if _, ok := empty.Pick(0); ok || empty.Total() != 0 {
		t.Fatal("empty catalog picked")
	}

	tests := []struct {
		name  string
		items []Item
		want  error
		msg   string
	}{
		{"duplicate", []Item{{"a", 1, 1}, {"b", 1, 1}, {"a", 2, 2}}, ErrDuplicateItem, `"a" in slots 0 and 2`},
		{"invalid", []Item{{"a", 1, 1}, {"b", 1, 0}}, ErrInvalidItem, `pool: item "b": weight is zero: invalid item (items[1])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.items)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("New = %v; want %v mentioning %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestCatalogAdminOps(t *testing.T) {
	c := mustNew(t, Item{"a", 5, w(1)}, Item{"b", Unlimited, w(2)})

	// Add appends a new slot.
	slot, err := c.Add(Item{"c", 3, w(4)})
	if err != nil || slot != 2 {
		t.Fatalf("Add(c) = %d, %v", slot, err)
	}
	checkCatalog(t, c)

	// Add of a live id, invalid item.
	if _, err := c.Add(Item{"a", 1, 1}); !errors.Is(err, ErrDuplicateItem) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("Add(dup a) = %v", err)
	}
	if _, err := c.Add(Item{"d", -5, 1}); !errors.Is(err, ErrInvalidItem) {
		t.Fatalf("Add(bad quantity) = %v", err)
	}
	checkCatalog(t, c)

	// Set changes stock and weight; to zero stock it leaves selection.
	if err := c.Set(0, 0, w(9)); err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, c)
	if c.Available(0) || c.Total() != w(2)+w(4) {
		t.Fatalf("after Set(a, 0): Available=%v Total=%d", c.Available(0), c.Total())
	}
	if err := c.Set(0, 7, w(9)); err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, c)
	for _, tt := range []struct {
		slot int32
		q    int64
		w    uint64
		want error
		msg  string
	}{
		{9, 1, 1, ErrUnknownItem, "slot 9: no such slot"},
		{-1, 1, 1, ErrUnknownItem, "slot -1"},
		{0, -2, 1, ErrInvalidItem, `"a": quantity -2`},
		{0, 1, 0, ErrInvalidItem, `"a": weight is zero`},
		{0, 1, MaxWeight + 1, ErrInvalidItem, "maximum"},
	} {
		if err := c.Set(tt.slot, tt.q, tt.w); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Set(%d, %d, %d) = %v; want %v mentioning %q", tt.slot, tt.q, tt.w, err, tt.want, tt.msg)
		}
	}

	// Remove keeps the slot and its item but drops it from everything else.
	if err := c.Remove(1); err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, c)
	if it, removed := c.Item(1); !removed || it.ID != "b" {
		t.Fatalf("Item(1) = %+v, %v", it, removed)
	}
	if c.Slots() != 3 || len(c.Items()) != 2 || c.Total() != w(9)+w(4) {
		t.Fatalf("after Remove: Slots=%d Items=%v Total=%d", c.Slots(), c.Items(), c.Total())
	}
	if err := c.Remove(1); !errors.Is(err, ErrUnknownItem) || !strings.Contains(err.Error(), `"b" (slot 1): item is removed`) {
		t.Fatalf("second Remove = %v", err)
	}
	if err := c.Set(1, 1, 1); !errors.Is(err, ErrUnknownItem) {
		t.Fatalf("Set on removed = %v", err)
	}
	if err := c.Remove(3); !errors.Is(err, ErrUnknownItem) {
		t.Fatalf("Remove(3) = %v", err)
	}

	// Re-adding the removed id reuses its slot with the new values.
	slot, err = c.Add(Item{"b", 2, w(1)})
	if err != nil || slot != 1 {
		t.Fatalf("re-Add(b) = %d, %v; want slot 1", slot, err)
	}
	checkCatalog(t, c)
	if it, removed := c.Item(1); removed || it != (Item{"b", 2, w(1)}) {
		t.Fatalf("Item(1) = %+v, %v", it, removed)
	}
	if c.Slots() != 3 {
		t.Fatalf("Slots = %d after reuse", c.Slots())
	}
}

func TestCatalogRestoreTruncate(t *testing.T) {
	c := mustNew(t, Item{"a", 5, w(1)}, Item{"b", Unlimited, w(2)})
	before := c.AppendSlots(nil)

	// Undo a Set.
	old, _ := c.Item(0)
	_ = c.Set(0, 0, w(7))
	c.Restore(0, old, false)
	checkCatalog(t, c)
	if !reflect.DeepEqual(c.AppendSlots(nil), before) {
		t.Fatalf("Set undo: %v, want %v", c.AppendSlots(nil), before)
	}

	// Undo a Remove.
	old, _ = c.Item(1)
	_ = c.Remove(1)
	c.Restore(1, old, false)
	checkCatalog(t, c)
	if !reflect.DeepEqual(c.AppendSlots(nil), before) {
		t.Fatal("Remove undo differs")
	}

	// Undo an Add that reused a slot: restore it as removed.
	_ = c.Remove(1)
	removedB := c.AppendSlots(nil)
	old, _ = c.Item(1)
	if slot, err := c.Add(Item{"b", 3, w(3)}); err != nil || slot != 1 {
		t.Fatal(slot, err)
	}
	c.Restore(1, old, true)
	checkCatalog(t, c)
	if !reflect.DeepEqual(c.AppendSlots(nil), removedB) {
		t.Fatal("reuse-Add undo differs")
	}

	// Undo an Add that appended: Truncate; the id is free again.
	n := c.Slots()
	if _, err := c.Add(Item{"c", 1, 1}); err != nil {
		t.Fatal(err)
	}
	c.Truncate(n)
	checkCatalog(t, c)
	if _, ok := c.Lookup("c"); ok {
		t.Fatal("truncated id still found")
	}
	if slot, err := c.Add(Item{"c", 1, 1}); err != nil || slot != int32(n) {
		t.Fatalf("Add after Truncate = %d, %v", slot, err)
	}
	checkCatalog(t, c)

	// Restore may change the id of a slot (snapshot load) and remove a live one.
	c.Restore(2, Item{"d", 4, w(4)}, false)
	checkCatalog(t, c)
	if _, ok := c.Lookup("c"); ok {
		t.Fatal("old id still found after Restore with new id")
	}
	c.Restore(0, Item{"a", 5, w(1)}, true)
	checkCatalog(t, c)
	c.Truncate(0)
	checkCatalog(t, c)
	if c.Total() != 0 || c.Slots() != 0 {
		t.Fatal("Truncate(0) left state")
	}
}

func TestCatalogTakeUntake(t *testing.T) {
	c := mustNew(t, Item{"one", 1, w(1)}, Item{"many", 3, w(2)}, Item{"inf", Unlimited, w(4)})
	before := c.AppendSlots(nil)

	c.Take(0) // last unit: weight leaves selection
	checkCatalog(t, c)
	if c.Available(0) || c.Total() != w(6) {
		t.Fatalf("after taking the last unit: Available=%v Total=%d", c.Available(0), c.Total())
	}
	c.Take(1)
	c.Take(1)
	c.Take(2)
	checkCatalog(t, c)
	if it, _ := c.Item(1); it.Quantity != 1 {
		t.Fatalf("quantity %d, want 1", it.Quantity)
	}
	if it, _ := c.Item(2); it.Quantity != Unlimited {
		t.Fatalf("unlimited quantity changed to %d", it.Quantity)
	}
	// Undo in reverse order restores exactly.
	c.Untake(2)
	c.Untake(1)
	c.Untake(1)
	c.Untake(0)
	checkCatalog(t, c)
	if !reflect.DeepEqual(c.AppendSlots(nil), before) {
		t.Fatalf("after Untake: %v, want %v", c.AppendSlots(nil), before)
	}

	// Taking from an empty item is a caller bug: panic, never wrap to Unlimited.
	c.Take(0)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Take without stock did not panic")
			}
		}()
		c.Take(0)
	}()
	if it, _ := c.Item(0); it.Quantity != 0 {
		t.Fatalf("quantity %d after failed Take", it.Quantity)
	}
}

func TestCatalogPickSkipsUnavailable(t *testing.T) {
	c := mustNew(t, Item{"gone", 0, w(5)}, Item{"x", 1, w(1)}, Item{"dead", 9, w(5)}, Item{"y", 1, 2})
	_ = c.Remove(2)
	if c.Total() != w(1)+2 {
		t.Fatalf("Total = %d", c.Total())
	}
	for _, tt := range []struct {
		r    uint64
		slot int32
		ok   bool
	}{
		{0, 1, true}, {w(1) - 1, 1, true}, {w(1), 3, true}, {w(1) + 1, 3, true}, {w(1) + 2, -1, false},
	} {
		slot, ok := c.Pick(tt.r)
		if slot != tt.slot || ok != tt.ok {
			t.Errorf("Pick(%d) = %d, %v; want %d, %v", tt.r, slot, ok, tt.slot, tt.ok)
		}
	}
}

func TestCatalogSlotsRoundTrip(t *testing.T) {
	c := mustNew(t, Item{"a", 5, w(1)}, Item{"b", 0, w(2)}, Item{"c", Unlimited, 1})
	_ = c.Remove(0)
	slots := c.AppendSlots(nil)
	d, err := FromSlots(slots)
	if err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, d)
	if !reflect.DeepEqual(d.AppendSlots(nil), slots) || d.Total() != c.Total() {
		t.Fatal("FromSlots(AppendSlots) differs")
	}
	slots[2].Quantity = 99 // FromSlots copied its input
	if it, _ := d.Item(2); it.Quantity != Unlimited {
		t.Fatal("FromSlots aliases its input")
	}
	// Re-adding a removed id after a snapshot load reuses the slot.
	if slot, err := d.Add(Item{"a", 1, 1}); err != nil || slot != 0 {
		t.Fatalf("Add(a) after FromSlots = %d, %v", slot, err)
	}

	for _, tt := range []struct {
		name  string
		slots []Slot
		want  error
		msg   string
	}{
		{"dup removed", []Slot{{Item{"a", 1, 1}, true}, {Item{"a", 1, 1}, false}}, ErrDuplicateItem, `"a" in slots 0 and 1`},
		{"invalid removed", []Slot{{Item{"a", 1, 1}, false}, {Item{"b", 1, 0}, true}}, ErrInvalidItem, `"b": weight is zero: invalid item (slot 1)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromSlots(tt.slots)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("FromSlots = %v; want %v mentioning %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestCatalogClone(t *testing.T) {
	c := mustNew(t, Item{"a", 5, w(1)}, Item{"b", Unlimited, w(2)})
	d := c.Clone()
	c.Take(0)
	_ = c.Remove(1)
	_, _ = c.Add(Item{"c", 1, 1})
	checkCatalog(t, d)
	if d.Slots() != 2 || d.Total() != w(3) {
		t.Fatalf("clone changed: Slots=%d Total=%d", d.Slots(), d.Total())
	}
	if it, _ := d.Item(0); it.Quantity != 5 {
		t.Fatal("clone shares slots")
	}
	if _, ok := d.Lookup("c"); ok {
		t.Fatal("clone shares the id index")
	}
}

func TestTooManyItems(t *testing.T) {
	// Lower the limit instead of allocating MaxItems slots.
	defer func(old int) { slotLimit = old }(slotLimit)
	slotLimit = 2
	items := []Item{{"a", 1, 1}, {"b", 1, 1}, {"c", 1, 1}}
	if _, err := New(items); !errors.Is(err, ErrTooManyItems) || !strings.Contains(err.Error(), "3 items, limit is 2") {
		t.Fatalf("New over the limit = %v", err)
	}
	if _, err := FromSlots(make([]Slot, 3)); !errors.Is(err, ErrTooManyItems) || !strings.Contains(err.Error(), "3 slots, limit is 2") {
		t.Fatalf("FromSlots over the limit = %v", err)
	}
	c := mustNew(t, items[:2]...)
	if _, err := c.Add(items[2]); !errors.Is(err, ErrTooManyItems) || !strings.Contains(err.Error(), `add item "c"`) {
		t.Fatalf("Add at the limit = %v", err)
	}
	// Reusing a removed slot needs no new slot, so it works at the limit.
	_ = c.Remove(1)
	if slot, err := c.Add(items[1]); err != nil || slot != 1 {
		t.Fatalf("re-Add at the limit = %d, %v", slot, err)
	}
	checkCatalog(t, c)
}

// TestCatalogRandomUndo applies random admin and draw operations and undoes
// each with the inverse the engine uses (Restore, Truncate, Untake),
// checking that the state returns exactly to where it was.
func TestCatalogRandomUndo(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	c := mustNew(t)
	for step := 0; step < 3000; step++ {
		before := c.AppendSlots(nil)
		n := c.Slots()
		var undo func()
		id := fmt.Sprintf("i%d", rng.IntN(40))
		q := int64(rng.IntN(4)) - 1
		wt := 1 + rng.Uint64N(w(10))
		switch k := rng.IntN(5); {
		case k == 0:
			slot, err := c.Add(Item{id, q, wt})
			if err == nil {
				if int(slot) == n {
					undo = func() { c.Truncate(n) }
				} else {
					old := before[slot]
					undo = func() { c.Restore(slot, old.Item, old.Removed) }
				}
			}
		case k == 1 && n > 0:
			slot := int32(rng.IntN(n))
			if c.Set(slot, q, wt) == nil {
				old := before[slot]
				undo = func() { c.Restore(slot, old.Item, old.Removed) }
			}
		case k == 2 && n > 0:
			slot := int32(rng.IntN(n))
			if c.Remove(slot) == nil {
				old := before[slot]
				undo = func() { c.Restore(slot, old.Item, old.Removed) }
			}
		default: // a small batch of draws
			var taken []int32
			for j := 0; j < 3 && c.Total() > 0; j++ {
				slot, ok := c.Pick(rng.Uint64N(c.Total()))
				if !ok || !c.Available(slot) {
					t.Fatalf("Pick returned unavailable slot %d, %v", slot, ok)
				}
				c.Take(slot)
				taken = append(taken, slot)
			}
			undo = func() {
				for j := len(taken) - 1; j >= 0; j-- {
					c.Untake(taken[j])
				}
			}
		}
		checkCatalog(t, c)
		if undo != nil && rng.IntN(3) == 0 {
			undo()
			checkCatalog(t, c)
			if got := c.AppendSlots(nil); !reflect.DeepEqual(got, before) {
				t.Fatalf("step %d: undo gave %v, want %v", step, got, before)
			}
		}
	}
}

func TestCatalogNoAllocs(t *testing.T) {
	items := make([]Item, 1000)
	for i := range items {
		items[i] = Item{ID: fmt.Sprint("i", i), Quantity: 1 << 40, Weight: uint64(i + 1)}
	}
	c := mustNew(t, items...)
	var r uint64
	allocs := testing.AllocsPerRun(1000, func() {
		slot, _ := c.Pick(r % c.Total())
		c.Take(slot)
		c.Untake(slot)
		c.Take(slot)
		_ = c.Available(slot)
		r += 104_729
	})
	if allocs != 0 {
		t.Fatalf("Pick+Take allocates %.1f times per draw", allocs)
	}
}
