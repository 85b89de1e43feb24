package drawbatch

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/protobuf/proto"
)

// quote appends s as a JSON string (the server passes its own appender).
func quote(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return append(b, q...)
}

// build is what the server does: one Add per draw, in order.
func build(bd *Builder, draws []Draw) *Batch {
	first := uint64(0)
	if len(draws) > 0 {
		first = draws[0].RequestID
	}
	bd.Reset(first)
	bd.Grow(len(draws))
	for _, d := range draws {
		bd.Add(d.ItemID, d.Error)
	}
	return bd.Batch()
}

// plainJSON is the server's plain answer for draws.
func plainJSON(draws []Draw) []byte {
	b := []byte(`{"draws":[`)
	for i, d := range draws {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"request_id":%d,`, d.RequestID)
		if d.Error != "" {
			b = append(b, `"error":`...)
			b = quote(b, d.Error)
		} else {
			b = append(b, `"item_id":`...)
			b = quote(b, d.ItemID)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// roundTrips checks every way draws travel compactly against the draws
// themselves: the batch expanded, the proto message after marshalling, the
// JSON answer; and the plain JSON answer decodes to them too.
func roundTrips(t *testing.T, bd *Builder, draws []Draw) {
	t.Helper()
	b := build(bd, draws)
	if err := b.Check(); err != nil {
		t.Fatalf("built batch fails Check: %v", err)
	}
	if len(b.Items)+len(b.Errors) > len(draws) {
		t.Fatalf("%d+%d table entries for %d draws", len(b.Items), len(b.Errors), len(draws))
	}
	for _, tab := range [][]string{b.Items, b.Errors} { // distinct
		for i, o := range tab {
			if slices.Contains(tab[:i], o) {
				t.Fatalf("%q twice in the table %q", o, tab)
			}
		}
	}
	got, err := b.Expand(nil)
	if err != nil || !slices.Equal(got, draws) {
		t.Fatalf("Expand = %v, %v; want %v", got, err, draws)
	}
	wire, err := proto.Marshal(&rpv1.DrawResponse{Batch: b.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	var resp rpv1.DrawResponse
	if err := proto.Unmarshal(wire, &resp); err != nil {
		t.Fatal(err)
	}
	if got, err := Draws(&resp); err != nil || !equalDraws(got, draws) {
		t.Fatalf("proto round trip = %v, %v; want %v", got, err, draws)
	}
	js := b.AppendJSON(nil, quote)
	if got, err := DecodeJSON(js, nil); err != nil || !equalDraws(got, draws) {
		t.Fatalf("JSON round trip of %s = %v, %v; want %v", js, got, err, draws)
	}
	if got, err := DecodeJSON(plainJSON(draws), nil); err != nil || !equalDraws(got, draws) {
		t.Fatalf("plain JSON = %v, %v; want %v", got, err, draws)
	}
}

func equalDraws(a, b []Draw) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }

// outcome is one draw's item or error, for building test answers.
type outcome struct{ ItemID, Error string }

// consecutive gives draws with request ids first, first+1, ...
func consecutive(first uint64, outcomes ...outcome) []Draw {
	out := make([]Draw, len(outcomes))
	for i, o := range outcomes {
		out[i] = Draw{RequestID: first + uint64(i), ItemID: o.ItemID, Error: o.Error}
	}
	return out
}

func TestRoundTripTable(t *testing.T) {
	gold, ruby, empty := outcome{ItemID: "gold"}, outcome{ItemID: "ruby"}, outcome{Error: "POOL_EMPTY"}
	many := make([]outcome, 40) // more distinct items than the scan table holds
	for i := range many {
		many[i] = outcome{ItemID: fmt.Sprintf("item%02d", i%20)}
	}
	odd := outcome{ItemID: "é \"quoted\" \\ \x01"}
	cases := map[string][]Draw{
		"none":          nil,
		"one":           consecutive(1, gold),
		"repeats":       consecutive(101, gold, ruby, gold, gold, ruby),
		"runs dry":      consecutive(7, gold, ruby, empty, empty, empty),
		"only empty":    consecutive(9, empty, empty),
		"many items":    consecutive(1000, many...),
		"empty between": consecutive(5, append(append(slices.Clone(many[:12]), empty), many[12:30]...)...),
		"escapes":       consecutive(3, odd, gold, odd),
		"top ids":       consecutive(math.MaxUint64-2, gold, ruby, gold),
		"two reasons":   consecutive(1, gold, outcome{Error: "A"}, ruby, outcome{Error: "B"}, outcome{Error: "A"}, gold),
		"reasons, many": consecutive(1, append(append(slices.Clone(many), outcome{Error: "B"}, empty), many...)...),
	}
	var bd Builder // reused across cases, as the server's pooled one is
	for name, draws := range cases {
		t.Run(name, func(t *testing.T) { roundTrips(t, &bd, draws) })
	}
}

// A model test: random answers (random catalog sizes, counts, failed draws
// at random points, request ids anywhere in the range) through one reused
// Builder give back exactly the draws, every way.
func TestRoundTripModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var bd Builder
	for range 500 {
		items := 1 + rng.IntN(60)
		n := rng.IntN(300)
		first := rng.Uint64()
		if first > math.MaxUint64-uint64(n) {
			first = math.MaxUint64 - uint64(n)
		}
		emptyFrom := n
		if rng.IntN(3) == 0 {
			emptyFrom = rng.IntN(n + 1)
		}
		outcomes := make([]outcome, n)
		for i := range outcomes {
			if i >= emptyFrom {
				outcomes[i] = outcome{Error: "POOL_EMPTY"}
			} else if rng.IntN(50) == 0 {
				outcomes[i] = outcome{Error: "R" + strconv.Itoa(rng.IntN(3))}
			} else {
				outcomes[i] = outcome{ItemID: "it" + strconv.Itoa(rng.IntN(items))}
			}
		}
		roundTrips(t, &bd, consecutive(first, outcomes...))
	}
}

func TestMalformed(t *testing.T) {
	for name, b := range map[string]Batch{
		"index outside":  {First: 1, Items: []string{"a"}, Index: []uint32{0, 1}},
		"errors outside": {First: 1, Items: []string{"a"}, Errors: []string{"E"}, Index: []uint32{2}},
		"no table":       {First: 1, Index: []uint32{0}},
		"overflow":       {First: math.MaxUint64, Items: []string{"a"}, Index: []uint32{0, 0}},
		"empty item":     {Items: []string{""}, Index: []uint32{0}},
		"empty error":    {Errors: []string{""}, Index: []uint32{0}},
	} {
		if _, err := b.Expand(nil); err == nil {
			t.Errorf("%s: Expand accepted %+v", name, b)
		}
		if _, err := DecodeJSON(b.AppendJSON(nil, quote), nil); err == nil {
			t.Errorf("%s: DecodeJSON accepted %s", name, b.AppendJSON(nil, quote))
		}
		if _, err := Draws(&rpv1.DrawResponse{Batch: b.Proto()}); err == nil {
			t.Errorf("%s: Draws accepted %+v", name, b)
		}
	}
	for _, s := range []string{`{"draws":[{"request_id":1,"item_id":"a"}],"batch":{"first_request_id":1}}`, `{"batch":{"first_request_id":-1}}`, `{"batch":{}}`, `[`, `{"draws":[{"request_id":1.5}]}`} {
		if d, err := DecodeJSON([]byte(s), nil); err == nil {
			t.Errorf("DecodeJSON(%s) = %v, want an error", s, d)
		}
	}
}

// FuzzDecodeJSON: DecodeJSON never panics, and whatever it accepts in
// compact form re-encodes (Builder, AppendJSON) to an answer that decodes
// to the same draws.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"batch":{"first_request_id":101,"item_ids":["gold"],"errors":["POOL_EMPTY"],"outcome_index":[0,0,1]}}`,
		`{"batch":{"first_request_id":"18446744073709551615","item_ids":["a"],"outcome_index":[0]}}`,
		`{"draws":[{"request_id":1,"item_id":"gold"},{"request_id":"2","error":"POOL_EMPTY"}]}`,
		`{"batch":{"first_request_id":1,"item_ids":[],"errors":["E"],"outcome_index":[0]}}`,
		`{"batch":null}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	var bd Builder
	f.Fuzz(func(t *testing.T, body []byte) {
		draws, err := DecodeJSON(body, nil)
		if err != nil {
			return
		}
		for i := 1; i < len(draws); i++ {
			if draws[i].RequestID != draws[i-1].RequestID+1 {
				return // a plain answer need not be consecutive
			}
		}
		ok := true
		for _, d := range draws {
			if (d.ItemID == "") == (d.Error == "") {
				ok = false // plain answers are not checked draw by draw
			}
		}
		if ok {
			roundTrips(t, &bd, draws)
		}
	})
}

// FuzzDrawsProto: Draws never panics on any DrawResponse, and a batch it
// accepts rebuilds into one that gives the same draws.
func FuzzDrawsProto(f *testing.F) {
	var bd Builder
	seed := build(&bd, consecutive(5, outcome{ItemID: "a"}, outcome{ItemID: "b"}, outcome{Error: "POOL_EMPTY"}, outcome{ItemID: "a"}))
	for _, m := range []*rpv1.DrawResponse{
		{Batch: seed.Proto()},
		{Batch: &rpv1.DrawBatch{FirstRequestId: math.MaxUint64, ItemIds: []string{"x"}, OutcomeIndex: []uint32{0, 0}}},
		{Batch: &rpv1.DrawBatch{FirstRequestId: 9, ItemIds: []string{"x"}, Errors: []string{"POOL_EMPTY", "OTHER"}, OutcomeIndex: []uint32{2, 0, 1}}},
		{Draws: []*rpv1.Draw{{RequestId: 1, ItemId: "x"}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		var resp rpv1.DrawResponse
		if proto.Unmarshal(wire, &resp) != nil || resp.GetBatch() == nil {
			return
		}
		draws, err := Draws(&resp)
		if err != nil {
			return
		}
		if len(draws) != len(resp.GetBatch().GetOutcomeIndex()) {
			t.Fatalf("%d draws from %d indexes", len(draws), len(resp.GetBatch().GetOutcomeIndex()))
		}
		roundTrips(t, &bd, draws)
	})
}
