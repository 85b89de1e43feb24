package rewardpoolv1_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	rewardpoolv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
)

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{}
)

// TestDrawResponseJSONRoundTrip checks the HTTP/JSON shape: snake_case names
// and request_id written as a string, and a lossless round trip.
func TestDrawResponseJSONRoundTrip(t *testing.T) {
	in := &rewardpoolv1.DrawResponse{Draws: []*rewardpoolv1.Draw{
		{RequestId: 101, ItemId: "gold"},
		{RequestId: 18446744073709551615, Error: "POOL_EMPTY"}, // max uint64: exact only as a string
	}}
	b, err := marshal.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var generic struct {
		Draws []map[string]any `json:"draws"`
	}
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatalf("protojson output is not JSON: %v\n%s", err, b)
	}
	if len(generic.Draws) != 2 {
		t.Fatalf("want 2 draws, got %d: %s", len(generic.Draws), b)
	}
	d0 := generic.Draws[0]
	if got, ok := d0["request_id"].(string); !ok || got != "101" {
		t.Errorf(`draws[0].request_id = %#v, want the JSON string "101": %s`, d0["request_id"], b)
	}
	if got := d0["item_id"]; got != "gold" {
		t.Errorf("draws[0].item_id = %#v, want \"gold\": %s", got, b)
	}
	if _, ok := d0["error"]; ok {
		t.Errorf("draws[0] has an error field though it is empty: %s", b)
	}
	d1 := generic.Draws[1]
	if got := d1["request_id"]; got != "18446744073709551615" {
		t.Errorf("draws[1].request_id = %#v: %s", got, b)
	}
	if got := d1["error"]; got != "POOL_EMPTY" {
		t.Errorf("draws[1].error = %#v: %s", got, b)
	}
	for _, camel := range []string{"requestId", "itemId"} {
		if _, ok := d0[camel]; ok {
			t.Errorf("camelCase field %q in output: %s", camel, b)
		}
	}

	out := &rewardpoolv1.DrawResponse{}
	if err := unmarshal.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Errorf("round trip changed the message:\n in: %v\nout: %v", in, out)
	}
}

// TestRequestIDAcceptsNumberAndString checks that uint64 fields are read from
// a JSON number as well as from a JSON string.
func TestRequestIDAcceptsNumberAndString(t *testing.T) {
	for _, body := range []string{
		`{"draws": [{"request_id": 101, "item_id": "gold"}, {"request_id": 102, "error": "POOL_EMPTY"}]}`,
		`{"draws": [{"request_id": "101", "item_id": "gold"}, {"request_id": "102", "error": "POOL_EMPTY"}]}`,
	} {
		got := &rewardpoolv1.DrawResponse{}
		if err := unmarshal.Unmarshal([]byte(body), got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		want := &rewardpoolv1.DrawResponse{Draws: []*rewardpoolv1.Draw{
			{RequestId: 101, ItemId: "gold"},
			{RequestId: 102, Error: "POOL_EMPTY"},
		}}
		if !proto.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", body, got, want)
		}
	}
}

// TestDrawRequestJSONNames checks the request body shape of
// POST /v1/pools/{pool}/draw.
func TestDrawRequestJSONNames(t *testing.T) {
	in := &rewardpoolv1.DrawRequest{Pool: "default", Count: 3, IdempotencyKey: "k-1"}
	b, err := marshal.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["idempotency_key"] != "k-1" {
		t.Errorf("idempotency_key missing or wrong: %s", b)
	}
	if m["count"] != float64(3) { // uint32 is a JSON number
		t.Errorf("count = %#v, want the number 3: %s", m["count"], b)
	}
	got := &rewardpoolv1.DrawRequest{}
	if err := unmarshal.Unmarshal([]byte(`{"count": 3, "idempotency_key": "k-1"}`), got); err != nil {
		t.Fatal(err)
	}
	if got.GetCount() != 3 || got.GetIdempotencyKey() != "k-1" {
		t.Errorf("parsed %v", got)
	}
}

// TestPutItemPresence checks that optional quantity/weight distinguish
// "absent" from zero.
func TestPutItemPresence(t *testing.T) {
	got := &rewardpoolv1.PutItemRequest{}
	if err := unmarshal.Unmarshal([]byte(`{"weight": 0.5}`), got); err != nil {
		t.Fatal(err)
	}
	if got.Quantity != nil {
		t.Errorf("quantity should be absent, got %d", got.GetQuantity())
	}
	if got.Weight == nil || got.GetWeight() != 0.5 {
		t.Errorf("weight = %v, want 0.5", got.Weight)
	}
	if err := unmarshal.Unmarshal([]byte(`{"quantity": 0}`), got); err != nil {
		t.Fatal(err)
	}
	if got.Quantity == nil || got.GetQuantity() != 0 {
		t.Errorf("quantity 0 should be present")
	}
}
