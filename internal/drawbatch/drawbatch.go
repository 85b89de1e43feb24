// Package drawbatch is the compact form of a draw answer (DrawBatch in the
// API): the request ids of one request's draws are consecutive, so they are
// sent as the first one, and each distinct item id (or failed draw's reason)
// is sent once in a table, with one small index per draw.
//
// The server builds a Batch from the engine's results (Builder); clients
// turn the wire forms back into plain draws (Draws, DecodeJSON, Expand).
// Expanding a batch gives exactly the draws the plain answer would hold.
package drawbatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
)

// Draw is one draw as the plain answer gives it: an item id, or an error
// reason for a failed draw.
type Draw struct {
	RequestID uint64
	ItemID    string
	Error     string
}

// Batch is the compact form of one request's draws. The table is Items
// followed by Errors: draw i has request id First+i and, with x = Index[i],
// item Items[x] when x < len(Items), else error Errors[x-len(Items)].
type Batch struct {
	First  uint64
	Items  []string
	Errors []string
	Index  []uint32
}

// Len is the number of draws.
func (b *Batch) Len() int { return len(b.Index) }

// ErrMalformed: a batch that does not describe a list of draws (an index
// outside the table, request ids that overflow, an empty item id or reason).
var ErrMalformed = errors.New("malformed draw batch")

// Check validates b: every index is inside the table, the request ids do
// not overflow, no table entry is empty.
func (b *Batch) Check() error {
	if n := uint64(len(b.Index)); n > 0 && b.First > math.MaxUint64-(n-1) {
		return fmt.Errorf("%w: first_request_id %d + %d draws overflows", ErrMalformed, b.First, n)
	}
	for i, id := range b.Items {
		if id == "" {
			return fmt.Errorf("%w: item_ids[%d] is empty", ErrMalformed, i)
		}
	}
	for i, e := range b.Errors {
		if e == "" {
			return fmt.Errorf("%w: errors[%d] is empty", ErrMalformed, i)
		}
	}
	table := int64(len(b.Items)) + int64(len(b.Errors))
	for i, x := range b.Index {
		if int64(x) >= table {
			return fmt.Errorf("%w: draw %d: outcome index %d outside the table of %d", ErrMalformed, i, x, table)
		}
	}
	return nil
}

// outcome is the item id or error of table entry x (inside the table).
func (b *Batch) outcome(x uint32) (item, reason string) {
	if int(x) < len(b.Items) {
		return b.Items[x], ""
	}
	return "", b.Errors[int(x)-len(b.Items)]
}

// Expand appends b's draws to dst, after checking b.
func (b *Batch) Expand(dst []Draw) ([]Draw, error) {
	if err := b.Check(); err != nil {
		return dst, err
	}
	for i, x := range b.Index {
		item, reason := b.outcome(x)
		dst = append(dst, Draw{RequestID: b.First + uint64(i), ItemID: item, Error: reason})
	}
	return dst, nil
}

// Failed counts the draws whose outcome is an error, and returns one of
// their reasons; b must have passed Check.
func (b *Batch) Failed() (n int, reason string) {
	if len(b.Errors) == 0 {
		return 0, ""
	}
	for _, x := range b.Index {
		if int(x) >= len(b.Items) {
			n++
		}
	}
	return n, b.Errors[0]
}

// Builder builds Batches. Its tables are kept between batches, so a
// Builder reused (pooled) builds without allocating once warm. Call Reset
// before the first Add. Not safe for concurrent use.
type Builder struct {
	b     Batch
	items map[string]uint32 // item id -> position in b.Items, past scanMax
	// errMark marks an index that points into Errors while building: the
	// table's final layout (items, then errors) is known only at the end.
	hasErr  bool
	lastErr int // position in b.Errors of the last reason used, -1 for none
}

// errMark is set on the index of an error outcome until Batch() places it
// after the items; an index never reaches it (counts are far below 2^31).
const errMark = 1 << 31

// Reset starts a new batch whose first draw has request id first. The
// previous batch's slices are reused: a Batch returned by Batch() is valid
// only until the next Reset.
func (bd *Builder) Reset(first uint64) {
	if bd.items == nil {
		bd.items = make(map[string]uint32)
	}
	if len(bd.b.Items) > scanMax {
		clear(bd.items)
	}
	clear(bd.b.Items) // drop the strings
	bd.b = Batch{First: first, Items: bd.b.Items[:0], Errors: bd.b.Errors[:0], Index: bd.b.Index[:0]}
	bd.hasErr, bd.lastErr = false, -1
}

// Grow makes room for n more draws.
func (bd *Builder) Grow(n int) {
	if cap(bd.b.Index)-len(bd.b.Index) < n {
		idx := make([]uint32, len(bd.b.Index), len(bd.b.Index)+n)
		copy(idx, bd.b.Index)
		bd.b.Index = idx
	}
}

// Add appends the next draw: an item (itemID set) or a failed draw
// (errReason set).
func (bd *Builder) Add(itemID, errReason string) {
	if errReason != "" {
		bd.b.Index = append(bd.b.Index, errMark|bd.errorIndex(errReason))
		bd.hasErr = true
		return
	}
	bd.b.Index = append(bd.b.Index, bd.itemIndex(itemID))
}

// scanMax is the table size up to which Add finds an item by scanning the
// table instead of through the map: for a one-draw request, or a pool of a
// few items, that is cheaper than hashing (the ids are usually the
// catalog's own strings, so equal ids compare by pointer).
const scanMax = 8

func (bd *Builder) itemIndex(id string) uint32 {
	if len(bd.b.Items) <= scanMax {
		for i, have := range bd.b.Items {
			if have == id {
				return uint32(i)
			}
		}
		x := uint32(len(bd.b.Items))
		bd.b.Items = append(bd.b.Items, id)
		if len(bd.b.Items) > scanMax {
			// From now on through the map: index the whole table once.
			for i, have := range bd.b.Items {
				bd.items[have] = uint32(i)
			}
		}
		return x
	}
	x, ok := bd.items[id]
	if !ok {
		x = uint32(len(bd.b.Items))
		bd.b.Items = append(bd.b.Items, id)
		bd.items[id] = x
	}
	return x
}

// errorIndex finds or adds a reason; reasons are few (one today), and a
// pool that ran dry fails every draw after, so the last one is tried first.
func (bd *Builder) errorIndex(reason string) uint32 {
	if bd.lastErr >= 0 && bd.b.Errors[bd.lastErr] == reason {
		return uint32(bd.lastErr)
	}
	for i, e := range bd.b.Errors {
		if e == reason {
			bd.lastErr = i
			return uint32(i)
		}
	}
	bd.b.Errors = append(bd.b.Errors, reason)
	bd.lastErr = len(bd.b.Errors) - 1
	return uint32(bd.lastErr)
}

// Batch is the batch built since the last Reset.
func (bd *Builder) Batch() *Batch {
	if bd.hasErr {
		k := uint32(len(bd.b.Items))
		for i, x := range bd.b.Index {
			if x&errMark != 0 {
				bd.b.Index[i] = k + x&^errMark
			}
		}
		bd.hasErr = false
	}
	return &bd.b
}

// Proto is b as the API message. The slices are shared with b.
func (b *Batch) Proto() *rpv1.DrawBatch {
	return &rpv1.DrawBatch{FirstRequestId: b.First, ItemIds: b.Items, Errors: b.Errors, OutcomeIndex: b.Index}
}

// FromProto reads the API message (not copied: the slices are shared with
// m), and checks it.
func FromProto(m *rpv1.DrawBatch) (*Batch, error) {
	b := &Batch{First: m.GetFirstRequestId(), Items: m.GetItemIds(), Errors: m.GetErrors(), Index: m.GetOutcomeIndex()}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

// Draws returns the draws of a DrawResponse, plain or compact: a client that
// asked for compact reads whichever form the server sent (a server that
// predates compact answers plainly).
func Draws(resp *rpv1.DrawResponse) ([]Draw, error) {
	if m := resp.GetBatch(); m != nil {
		if len(resp.GetDraws()) > 0 {
			return nil, fmt.Errorf("%w: both draws and batch are set", ErrMalformed)
		}
		b, err := FromProto(m)
		if err != nil {
			return nil, err
		}
		return b.Expand(make([]Draw, 0, b.Len()))
	}
	out := make([]Draw, len(resp.GetDraws()))
	for i, d := range resp.GetDraws() {
		out[i] = Draw{RequestID: d.GetRequestId(), ItemID: d.GetItemId(), Error: d.GetError()}
	}
	return out, nil
}

// AppendJSON appends b as the HTTP answer's JSON:
// {"batch":{"first_request_id":101,"item_ids":["gold"],"errors":[],"outcome_index":[0,0]}}.
// appendString writes a JSON string literal (the server passes its own, so
// both answers escape alike).
func (b *Batch) AppendJSON(dst []byte, appendString func([]byte, string) []byte) []byte {
	dst = append(dst, `{"batch":{"first_request_id":`...)
	dst = strconv.AppendUint(dst, b.First, 10)
	dst = append(dst, `,"item_ids":[`...)
	for i, id := range b.Items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, id)
	}
	dst = append(dst, `],"errors":[`...)
	for i, e := range b.Errors {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, e)
	}
	dst = append(dst, `],"outcome_index":[`...)
	for i, x := range b.Index {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(x), 10)
	}
	return append(dst, "]}}"...)
}

// jsonAnswer is the JSON shape of an HTTP draw answer, plain or compact.
type jsonAnswer struct {
	Draws []struct {
		RequestID json.Number `json:"request_id"`
		ItemID    string      `json:"item_id"`
		Error     string      `json:"error"`
	} `json:"draws"`
	Batch *struct {
		FirstRequestID json.Number `json:"first_request_id"`
		ItemIDs        []string    `json:"item_ids"`
		Errors         []string    `json:"errors"`
		OutcomeIndex   []uint32    `json:"outcome_index"`
	} `json:"batch"`
}

// DecodeJSON reads an HTTP draw answer, plain ({"draws":[...]}) or compact
// ({"batch":{...}}), and appends its draws to dst. Request ids may be JSON
// numbers or strings holding one.
func DecodeJSON(body []byte, dst []Draw) ([]Draw, error) {
	var a jsonAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if a.Batch == nil {
		for i, d := range a.Draws {
			id, err := parseID(d.RequestID)
			if err != nil {
				return dst, fmt.Errorf("%w: draw %d: request_id: %w", ErrMalformed, i, err)
			}
			dst = append(dst, Draw{RequestID: id, ItemID: d.ItemID, Error: d.Error})
		}
		return dst, nil
	}
	if len(a.Draws) > 0 {
		return dst, fmt.Errorf("%w: both draws and batch are set", ErrMalformed)
	}
	first, err := parseID(a.Batch.FirstRequestID)
	if err != nil {
		return dst, fmt.Errorf("%w: first_request_id: %w", ErrMalformed, err)
	}
	b := Batch{First: first, Items: a.Batch.ItemIDs, Errors: a.Batch.Errors, Index: a.Batch.OutcomeIndex}
	return b.Expand(dst)
}

// parseID reads a request id written as a JSON number or a string.
func parseID(n json.Number) (uint64, error) {
	s := string(n)
	if s == "" {
		return 0, errors.New("missing")
	}
	return strconv.ParseUint(s, 10, 64)
}
