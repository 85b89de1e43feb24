package pool

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxItems caps the number of catalog slots. With MaxWeight per item the
// total weight stays below 2^64 (1e7 * 1e12 = 1e19 < 1.8e19), so sums never
// overflow.
const MaxItems = 10_000_000

// slotLimit is MaxItems; a variable only so tests can reach the limit
// without allocating ten million slots.
var slotLimit = MaxItems

// Unlimited is the Quantity of an item that never runs out.
const Unlimited int64 = -1

// maxIDLen bounds item ids: they are written into every draw record.
const maxIDLen = 256

// Sentinel errors. Functions wrap them with the item and field at fault;
// test for them with errors.Is.
var (
	ErrInvalidItem   = errors.New("invalid item")   // bad id / quantity / weight
	ErrDuplicateItem = errors.New("duplicate item") // add of an id that is live
	ErrUnknownItem   = errors.New("unknown item")
	ErrTooManyItems  = errors.New("too many items")
)

// Item is one kind of reward in a pool.
type Item struct {
	ID       string
	Quantity int64  // remaining units, or Unlimited (-1)
	Weight   uint64 // relative weight in units (WeightUnit per whole), > 0
}

// ValidateItem checks that it can enter a catalog: the id is non-empty, at
// most 256 bytes of valid UTF-8 without whitespace or control characters
// (ids appear as a field of a line-oriented log format), the quantity is
// Unlimited or >= 0, and 0 < Weight <= MaxWeight.
func ValidateItem(it Item) error {
	if err := validateID(it.ID); err != nil {
		return err
	}
	if err := validateQuantity(it.ID, it.Quantity); err != nil {
		return err
	}
	return validateWeight(it.ID, it.Weight)
}

// ReservedID cannot name an item: the text log format uses it for a draw
// that found the pool empty.
const ReservedID = "FAILED"

func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("pool: item id is empty: %w", ErrInvalidItem)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("pool: item id %.32q...: %d bytes, longer than %d: %w", id, len(id), maxIDLen, ErrInvalidItem)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("pool: item id %q: not valid UTF-8: %w", id, ErrInvalidItem)
	}
	if id == ReservedID {
		return fmt.Errorf("pool: item id %q is reserved (the log writes empty-pool draws as DRAW <id> FAILED): %w", id, ErrInvalidItem)
	}
	if i := strings.IndexFunc(id, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}); i >= 0 {
		return fmt.Errorf("pool: item id %q: whitespace or control character at byte %d: %w", id, i, ErrInvalidItem)
	}
	return nil
}

func validateQuantity(id string, q int64) error {
	if q < Unlimited {
		return fmt.Errorf("pool: item %q: quantity %d is negative (use %d for unlimited): %w", id, q, Unlimited, ErrInvalidItem)
	}
	return nil
}

func validateWeight(id string, w uint64) error {
	if w == 0 {
		return fmt.Errorf("pool: item %q: weight is zero: %w", id, ErrInvalidItem)
	}
	if w > MaxWeight {
		return fmt.Errorf("pool: item %q: weight %s is greater than the maximum %s: %w", id, FormatWeight(w), FormatWeight(MaxWeight), ErrInvalidItem)
	}
	return nil
}

// Slot is one catalog position as exported for snapshots.
type Slot struct {
	Item
	Removed bool
}

// Catalog is the in-memory state of one pool: the items by slot number and a
// selector over their effective weights. A slot's effective weight is its
// Weight while the item is live and has stock, and zero otherwise.
//
// A Catalog is not safe for concurrent use; one goroutine owns it.
type Catalog struct {
	slots []Slot
	ids   map[string]int32 // every slot's id, removed slots included
	sel   Selector
}

// New builds a catalog with slot i holding items[i]. Every item is
// validated and ids must be distinct.
func New(items []Item) (*Catalog, error) {
	if len(items) > slotLimit {
		return nil, fmt.Errorf("pool: %d items, limit is %d: %w", len(items), slotLimit, ErrTooManyItems)
	}
	slots := make([]Slot, len(items))
	for i, it := range items {
		if err := ValidateItem(it); err != nil {
			return nil, fmt.Errorf("%w (items[%d])", err, i)
		}
		slots[i] = Slot{Item: it}
	}
	return fromSlots(slots)
}

// FromSlots rebuilds a catalog from the output of AppendSlots. Every slot,
// removed ones included, must hold a valid item, and ids must be distinct
// across all slots. The slice is copied.
func FromSlots(slots []Slot) (*Catalog, error) {
	if len(slots) > slotLimit {
		return nil, fmt.Errorf("pool: %d slots, limit is %d: %w", len(slots), slotLimit, ErrTooManyItems)
	}
	for i, s := range slots {
		if err := ValidateItem(s.Item); err != nil {
			return nil, fmt.Errorf("%w (slot %d)", err, i)
		}
	}
	return fromSlots(append([]Slot(nil), slots...))
}

// fromSlots takes ownership of already validated slots.
func fromSlots(slots []Slot) (*Catalog, error) {
	c := &Catalog{slots: slots, ids: make(map[string]int32, len(slots))}
	weights := make([]uint64, len(slots))
	for i, s := range slots {
		if prev, dup := c.ids[s.ID]; dup {
			return nil, fmt.Errorf("pool: item %q in slots %d and %d: %w", s.ID, prev, i, ErrDuplicateItem)
		}
		c.ids[s.ID] = int32(i)
		weights[i] = s.effectiveWeight()
	}
	c.sel.build(weights)
	return c, nil
}

// effectiveWeight is what the selector holds for the slot.
func (s *Slot) effectiveWeight() uint64 {
	if s.Removed || s.Quantity == 0 {
		return 0
	}
	return s.Weight
}

// Slots returns the number of slots, removed ones included.
func (c *Catalog) Slots() int { return len(c.slots) }

// Item returns the item in slot and whether it is removed. A removed slot
// still reports the item as it was when removed. It panics if slot is out of
// range.
func (c *Catalog) Item(slot int32) (it Item, removed bool) {
	s := &c.slots[slot]
	return s.Item, s.Removed
}

// Lookup returns the slot of the live item with id.
func (c *Catalog) Lookup(id string) (slot int32, ok bool) {
	slot, ok = c.ids[id]
	if !ok || c.slots[slot].Removed {
		return -1, false
	}
	return slot, true
}

// LookupAny returns the slot holding id, live or removed. Undoing an add
// that reused a removed slot needs it.
func (c *Catalog) LookupAny(id string) (slot int32, ok bool) {
	slot, ok = c.ids[id]
	if !ok {
		return -1, false
	}
	return slot, true
}

// Total returns the sum of the weights of live items with stock: the range
// Pick draws from.
func (c *Catalog) Total() uint64 { return c.sel.Total() }

// Available reports whether slot can be drawn: it exists, is live and has
// stock.
func (c *Catalog) Available(slot int32) bool {
	if uint32(slot) >= uint32(len(c.slots)) {
		return false
	}
	s := &c.slots[slot]
	return !s.Removed && s.Quantity != 0
}

// Pick maps r, uniform in [0, Total()), to the available slot it falls in,
// so each available item is picked with probability Weight/Total(). It
// returns ok=false when r >= Total(), in particular when nothing is
// available. It does not allocate.
func (c *Catalog) Pick(r uint64) (slot int32, ok bool) {
	i := c.sel.Find(r)
	if i < 0 {
		return -1, false
	}
	return int32(i), true
}

// Take removes one unit from slot; a no-op on Unlimited items. When the
// quantity reaches zero the slot's weight leaves the selector. The caller
// guarantees Available(slot); Take panics on an item without stock rather
// than let its quantity wrap to Unlimited. It does not allocate.
func (c *Catalog) Take(slot int32) {
	s := &c.slots[slot]
	switch s.Quantity {
	case Unlimited:
		return
	case 0:
		panic(fmt.Sprintf("pool: Take on slot %d (%q) with no stock", slot, s.ID))
	case 1:
		s.Quantity = 0
		c.sel.set(int(slot), 0)
	default:
		s.Quantity--
	}
}

// Untake gives back one unit taken by Take: the exact inverse, used to undo
// a batch whose write failed. A no-op on Unlimited items.
func (c *Catalog) Untake(slot int32) {
	s := &c.slots[slot]
	if s.Quantity == Unlimited {
		return
	}
	s.Quantity++
	if s.Quantity == 1 {
		c.sel.set(int(slot), s.effectiveWeight())
	}
}

// Add adds it as a live item and returns its slot. If a removed slot holds
// the same id, that slot is reused, so replaying the same adds and removes
// always yields the same slot numbers; otherwise a new slot is appended.
// Grow makes room for n more items, so that adding a catalog of a million
// items does not copy the slots and rehash the id index as it goes.
func (c *Catalog) Grow(n int) {
	c.slots = slices.Grow(c.slots, n)
	if len(c.ids) == 0 {
		c.ids = make(map[string]int32, n)
	}
}

func (c *Catalog) Add(it Item) (int32, error) {
	if err := ValidateItem(it); err != nil {
		return -1, err
	}
	if slot, ok := c.ids[it.ID]; ok {
		s := &c.slots[slot]
		if !s.Removed {
			return -1, fmt.Errorf("pool: add item %q: already in slot %d: %w", it.ID, slot, ErrDuplicateItem)
		}
		*s = Slot{Item: it}
		c.sel.set(int(slot), s.effectiveWeight())
		return slot, nil
	}
	if len(c.slots) >= slotLimit {
		return -1, fmt.Errorf("pool: add item %q: catalog has %d slots, limit is %d: %w", it.ID, len(c.slots), slotLimit, ErrTooManyItems)
	}
	slot := int32(len(c.slots))
	c.slots = append(c.slots, Slot{Item: it})
	c.ids[it.ID] = slot
	c.sel.Append(c.slots[slot].effectiveWeight())
	return slot, nil
}

// live returns the live slot or an error naming why it is not.
func (c *Catalog) live(op string, slot int32) (*Slot, error) {
	if uint32(slot) >= uint32(len(c.slots)) {
		return nil, fmt.Errorf("pool: %s slot %d: no such slot (catalog has %d): %w", op, slot, len(c.slots), ErrUnknownItem)
	}
	s := &c.slots[slot]
	if s.Removed {
		return nil, fmt.Errorf("pool: %s item %q (slot %d): item is removed: %w", op, s.ID, slot, ErrUnknownItem)
	}
	return s, nil
}

// Set changes the quantity and weight of the live item in slot.
func (c *Catalog) Set(slot int32, quantity int64, weight uint64) error {
	s, err := c.live("set", slot)
	if err != nil {
		return err
	}
	if err := validateQuantity(s.ID, quantity); err != nil {
		return err
	}
	if err := validateWeight(s.ID, weight); err != nil {
		return err
	}
	s.Quantity, s.Weight = quantity, weight
	c.sel.set(int(slot), s.effectiveWeight())
	return nil
}

// Remove removes the live item in slot. The slot keeps its number and its
// item (so a log that names the slot keeps its meaning and a later Add of
// the same id reuses it), but it leaves selection, Total and Items.
func (c *Catalog) Remove(slot int32) error {
	s, err := c.live("remove", slot)
	if err != nil {
		return err
	}
	s.Removed = true
	c.sel.set(int(slot), 0)
	return nil
}

// Restore puts slot back to exactly (it, removed), without validation: it
// undoes admin changes with values the catalog held before. It may re-add a
// removed slot or remove a live one. It panics if slot is out of range.
func (c *Catalog) Restore(slot int32, it Item, removed bool) {
	s := &c.slots[slot]
	if s.ID != it.ID {
		if c.ids[s.ID] == slot {
			delete(c.ids, s.ID)
		}
		c.ids[it.ID] = slot
	}
	*s = Slot{Item: it, Removed: removed}
	c.sel.set(int(slot), s.effectiveWeight())
}

// Truncate drops the slots >= n: the undo of an Add that appended a slot.
// It panics if n is negative or greater than Slots().
func (c *Catalog) Truncate(n int) {
	if n < 0 || n > len(c.slots) {
		panic(fmt.Sprintf("pool: truncate to %d slots, catalog has %d", n, len(c.slots)))
	}
	for i := n; i < len(c.slots); i++ {
		if id := c.slots[i].ID; c.ids[id] == int32(i) {
			delete(c.ids, id)
		}
	}
	clear(c.slots[n:]) // release id strings
	c.slots = c.slots[:n]
	c.sel.Truncate(n)
}

// Items returns a copy of the live items in slot order.
func (c *Catalog) Items() []Item {
	items := make([]Item, 0, len(c.slots))
	for i := range c.slots {
		if !c.slots[i].Removed {
			items = append(items, c.slots[i].Item)
		}
	}
	return items
}

// AppendSlots appends every slot, removed ones included, to dst and returns
// the extended slice: the flat form a snapshot stores.
func (c *Catalog) AppendSlots(dst []Slot) []Slot {
	return append(dst, c.slots...)
}

// Clone returns a deep copy of c.
func (c *Catalog) Clone() *Catalog {
	ids := make(map[string]int32, len(c.ids))
	for id, slot := range c.ids {
		ids[id] = slot
	}
	return &Catalog{
		slots: append([]Slot(nil), c.slots...),
		ids:   ids,
		sel:   *c.sel.Clone(),
	}
}
