package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Idempotency keys are bytes and are validated, never rewritten: a key
// that is not valid UTF-8, or spells a lone surrogate as a JSON escape, is
// refused with 400 / INVALID_ARGUMENT on every transport. Were it decoded
// leniently ("a\xff" and "a\xfe" both read as "a\uFFFD"), two clients
// would share one key and the second would get the first one's draws.
func TestIdempotencyKeyBytesHTTP(t *testing.T) {
	ts := startServer(t, serverOpts{})

	// The legitimate key "a\uFFFD" (a real U+FFFD) draws once and replays.
	first := ts.draw("prizes", "", `{"idempotency_key": "a\ufffd"}`)
	if again := ts.draw("prizes", "", "{\"idempotency_key\": \"a\xef\xbf\xbd\"}"); len(again) != 1 || again[0] != first[0] {
		t.Fatalf("the same key written raw and escaped: %+v then %+v, want the replay", first, again)
	}

	for _, tc := range []struct{ name, body string }{
		{"invalid byte ff", "{\"idempotency_key\": \"a\xff\"}"},
		{"invalid byte fe", "{\"idempotency_key\": \"a\xfe\"}"},
		{"truncated sequence", "{\"idempotency_key\": \"a\xe2\x82\"}"},
		{"surrogate encoded as UTF-8", "{\"idempotency_key\": \"a\xed\xa0\x80\"}"},
		{"lone high surrogate escape", `{"idempotency_key": "a\ud800"}`},
		{"lone low surrogate escape", `{"idempotency_key": "a\udc00"}`},
		{"high surrogate then letter", `{"idempotency_key": "\ud83dx"}`},
		{"two high surrogates", `{"idempotency_key": "\ud83d\ud83d"}`},
		{"surrogate at end of a long key", `{"idempotency_key": "` + strings.Repeat("k", 100) + `\uDBFF"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.poolJSON("prizes", "")
			code, body := ts.do("POST", "/v1/pools/prizes/draw", "", tc.body)
			if code != 400 {
				t.Fatalf("status %d, want 400; body %s", code, body)
			}
			e := decodeError(t, body)
			if e.Code != "INVALID_ARGUMENT" || !strings.Contains(e.Message, "idempotency_key") {
				t.Errorf("got %+v, want INVALID_ARGUMENT naming idempotency_key", e)
			}
			if after := ts.poolJSON("prizes", ""); after != before {
				t.Errorf("state changed by a refused key:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// A surrogate pair is one valid character (U+1F600) and is accepted,
	// whether escaped or raw, as the same key.
	pair := ts.draw("prizes", "", `{"idempotency_key": "\ud83d\ude00"}`)
	raw := ts.draw("prizes", "", `{"idempotency_key": "😀"}`)
	if len(pair) != 1 || pair[0] != raw[0] {
		t.Fatalf("escaped and raw U+1F600: %+v and %+v, want one key", pair, raw)
	}
}

// rawCodec sends pre-encoded protobuf bytes as they are, so a test can
// put bytes on the wire that the proto library refuses to marshal. It is
// named "proto" so the content type stays application/grpc+proto.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, errors.New("rawCodec: want *[]byte")
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return errors.New("rawCodec: want *[]byte")
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = rawCodec{}

// drawRequestBytes encodes a DrawRequest by hand, key bytes untouched.
func drawRequestBytes(pool string, count uint32, key string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, pool)
	if count != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(count))
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, key)
	return b
}

func TestIdempotencyKeyBytesGRPC(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)

	// Well-formed bytes through the raw path draw normally: the codec is
	// sound, so a refusal below is about the key.
	req := drawRequestBytes("prizes", 1, "good-key")
	var out []byte
	if err := ts.conn.Invoke(ctx, rpv1.RewardPool_Draw_FullMethodName, &req, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Fatalf("raw Draw with a valid key: %v", err)
	}

	for _, key := range []string{"a\xff", "a\xfe", "a\xed\xa0\x80", "\xc0\xaf"} {
		before := ts.grpcPool(ctx, "prizes")
		req := drawRequestBytes("prizes", 1, key)
		var out []byte
		err := ts.conn.Invoke(ctx, rpv1.RewardPool_Draw_FullMethodName, &req, &out, grpc.ForceCodecV2(rawCodec{}))
		st, _ := status.FromError(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "idempotency_key") {
			t.Errorf("Draw key %q: %v, want INVALID_ARGUMENT naming idempotency_key", key, err)
		}
		if after := ts.grpcPool(ctx, "prizes"); after.GetLastRequestId() != before.GetLastRequestId() {
			t.Errorf("Draw key %q drew (last id %d -> %d)", key, before.GetLastRequestId(), after.GetLastRequestId())
		}

		// An item id is validated the same way: refused, not stored.
		var put []byte
		put = protowire.AppendTag(put, 1, protowire.BytesType)
		put = protowire.AppendString(put, "prizes")
		put = protowire.AppendTag(put, 2, protowire.BytesType)
		put = protowire.AppendString(put, key)
		put = protowire.AppendTag(put, 3, protowire.VarintType)
		put = protowire.AppendVarint(put, 1)
		put = protowire.AppendTag(put, 4, protowire.Fixed64Type)
		put = protowire.AppendFixed64(put, 0x3ff0000000000000) // 1.0
		err = ts.conn.Invoke(ctx, rpv1.RewardPool_PutItem_FullMethodName, &put, &out, grpc.ForceCodecV2(rawCodec{}))
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument {
			t.Errorf("PutItem item id %q: %v, want INVALID_ARGUMENT", key, err)
		}
		if after := ts.grpcPool(ctx, "prizes"); len(after.Items) != len(before.Items) {
			t.Errorf("PutItem item id %q added an item", key)
		}

		// The stream says the same, and performs nothing.
		sctx, cancel := context.WithCancel(ctx)
		desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
		cs, err := ts.conn.NewStream(sctx, desc, rpv1.RewardPool_DrawStream_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if err := cs.SendMsg(&req); err != nil {
			cancel()
			t.Fatal(err)
		}
		cs.CloseSend()
		err = cs.RecvMsg(&out)
		cancel()
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "idempotency_key") {
			t.Errorf("DrawStream key %q: %v, want INVALID_ARGUMENT naming idempotency_key", key, err)
		}
	}
}
