package server

import (
	"unicode/utf8"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// requestCodec is grpc-go's proto codec with one difference on the
// receiving side: a RewardPool request whose top-level string field holds
// invalid UTF-8 is decoded with that field's bytes as they are, instead of
// failing. The service validates every string of those requests (keys and
// item ids must be UTF-8, pools are looked up by name); other messages,
// replication's among them, keep the proto library's strict decoding.
//
// The proto library refuses such a message, and grpc-go then answers
// INTERNAL "failed to unmarshal" before any of our code runs. A key that is
// not UTF-8 is the client's mistake, not the server's: decoding it lets the
// service layer refuse it with INVALID_ARGUMENT naming the field, as the
// HTTP API does. Nothing is rewritten: the bytes reach validation intact.
type requestCodec struct {
	encoding.CodecV2
}

func newRequestCodec() requestCodec {
	return requestCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

func (c requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var m protov2.Message
	switch v := v.(type) {
	case *rpv1.DrawRequest, *rpv1.GetPoolRequest, *rpv1.PutItemRequest, *rpv1.DeleteItemRequest:
		m = v.(protov2.Message)
	default:
		return err
	}
	if lenient(data.Materialize(), m.ProtoReflect()) {
		return nil
	}
	return err
}

// lenient decodes b into m, setting top-level singular string fields that
// are not valid UTF-8 from their raw bytes. It reports false (and m is to
// be discarded) when b has no such field or fails to decode for another
// reason.
func lenient(b []byte, m protoreflect.Message) bool {
	fields := m.Descriptor().Fields()
	var rest []byte
	type raw struct {
		fd  protoreflect.FieldDescriptor
		val string
	}
	var bad []raw
	for in := b; len(in) > 0; {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			return false
		}
		m := protowire.ConsumeFieldValue(num, typ, in[n:])
		if m < 0 {
			return false
		}
		field := in[:n+m]
		in = in[n+m:]
		fd := fields.ByNumber(num)
		if fd != nil && typ == protowire.BytesType && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated {
			v, _ := protowire.ConsumeBytes(field[n:])
			if !utf8.Valid(v) {
				bad = append(bad, raw{fd, string(v)})
				continue
			}
		}
		rest = append(rest, field...)
	}
	if len(bad) == 0 {
		return false
	}
	if err := protov2.Unmarshal(rest, m.Interface()); err != nil {
		return false
	}
	// A field given twice, bad then good, stays bad here (proto would keep
	// the last): the request is refused either way, which is the safe side.
	for _, r := range bad {
		m.Set(r.fd, protoreflect.ValueOfString(r.val))
	}
	return true
}
