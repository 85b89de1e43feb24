package stream

import (
	"context"
	"github.com/rewardpool/rewardpool/pool"
	"log/slog"

	"github.com/rewardpool/rewardpool/wal"
)

// Discard is the no-op sink: it accepts every record and keeps nothing.
var Discard Sink = discard{}

type discard struct{}

func (discard) Stream([]wal.Record) error { return nil }
func (discard) Close() error              { return nil }

// LogSink writes each record as one slog line, in log order, at level Info:
//
//	msg="wal record" seq=17 epoch=1 kind=draw request_id=101 item=gold commit=true
//
// kind is draw, draw_failed, key, add, set, remove or epoch. item is the
// item id when the record carries it, else the catalog slot (an integer;
// see the package doc). add and set records add quantity (-1: unlimited)
// and weight (decimal); key records add key and count.
type LogSink struct {
	log *slog.Logger
}

// NewLogSink returns a sink logging to l (slog.Default() if nil).
func NewLogSink(l *slog.Logger) *LogSink {
	if l == nil {
		l = slog.Default()
	}
	return &LogSink{log: l}
}

// Stream logs recs, one line each.
func (s *LogSink) Stream(recs []wal.Record) error {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return nil
	}
	var a [10]slog.Attr
	for i := range recs {
		r := &recs[i]
		attrs := append(a[:0],
			slog.Uint64("seq", r.Seq),
			slog.Uint64("epoch", r.Epoch),
			slog.String("kind", r.Kind.Name()))
		switch r.Kind {
		case wal.KindDraw, wal.KindDrawFailed:
			attrs = append(attrs, slog.Uint64("request_id", r.RequestID))
			if r.User != "" {
				attrs = append(attrs, slog.String("user", r.User), slog.Int64("time_unix_ms", r.Time))
			}
		case wal.KindKey:
			attrs = append(attrs, slog.String("key", r.Key), slog.Uint64("count", uint64(r.Count)))
		case wal.KindRules:
			attrs = append(attrs, slog.String("rules", r.Key))
		}
		switch {
		case r.ItemID != "":
			attrs = append(attrs, slog.String("item", r.ItemID))
		case r.Item >= 0 && r.Kind != wal.KindKey && r.Kind != wal.KindEpoch && r.Kind != wal.KindDrawFailed && r.Kind != wal.KindRules:
			attrs = append(attrs, slog.Int("item", int(r.Item)))
		}
		if r.Kind == wal.KindAdd || r.Kind == wal.KindSet {
			attrs = append(attrs, slog.Int64("quantity", r.Quantity), slog.String("weight", pool.FormatWeight(r.Weight)))
		}
		attrs = append(attrs, slog.Bool("commit", r.Commit))
		s.log.LogAttrs(ctx, slog.LevelInfo, "wal record", attrs...)
	}
	return nil
}

// Close does nothing.
func (s *LogSink) Close() error { return nil }
