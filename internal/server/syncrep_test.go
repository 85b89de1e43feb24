package server

import (
	"context"
	"sync"
	"testing"
	"time"

	rpool "github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/wal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// With min_sync_replicas 1, every draw a client saw answered is on the
// replica: stop the primary under load, promote the replica, and find every
// acknowledged (request id, item) in its log, nothing over-issued, and new
// ids above all acknowledged ones.
func TestMinSyncReplicas(t *testing.T) {
	semiSync := func(c *config.Config) {
		c.Replication.MinSyncReplicas = 1
		c.Durability = "always"
		c.AdminToken = "adm"
	}
	primary := startNode(t, "", "", semiSync)
	primary.srv.syncTimeout.Store(int64(300 * time.Millisecond))

	// No replica yet: the draw is durable here but cannot be confirmed.
	_, err := primary.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: "prizes", Count: 1, IdempotencyKey: "early"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("draw with no replica = %v, want UNAVAILABLE", err)
	}

	r := startNode(t, "", primary.srv.Addr().String(), semiSync)
	// Once the replica has caught up, the retry with the same key answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := primary.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: "prizes", Count: 1, IdempotencyKey: "early"})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("retry of the early draw: %v", err)
		}
	}

	// Load from 8 clients; record every acknowledged draw.
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				resp, err := primary.rp.Draw(context.Background(), &rpv1.DrawRequest{Pool: "prizes", Count: uint32(1 + (w+i)%3)})
				if err != nil {
					t.Errorf("draw: %v", err)
					return
				}
				mu.Lock()
				for _, d := range resp.GetDraws() {
					item := d.GetItemId()
					if d.GetError() != "" {
						item = "FAILED"
					}
					acked[d.GetRequestId()] = item
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	// The primary goes away; whatever it answered must be on the replica.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := primary.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	code, body := r.do("POST", "/v1/promote", "adm", "")
	if code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	eng, err := r.srv.pool("prizes")
	if err != nil {
		t.Fatal(err)
	}
	st, err := eng.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slotID := map[int32]string{}
	for i, it := range st.Items { // no item is ever removed here: slots are in order
		slotID[int32(i)] = it.ID
	}
	logged := map[uint64]string{}
	err = eng.ScanLog(1, func(rec *wal.Record) error {
		switch rec.Kind {
		case wal.KindDraw:
			id := rec.ItemID
			if id == "" {
				id = slotID[rec.Item]
			}
			logged[rec.RequestID] = id
		case wal.KindDrawFailed:
			logged[rec.RequestID] = "FAILED"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var maxAcked uint64
	for id, item := range acked {
		if got, ok := logged[id]; !ok || got != item {
			t.Fatalf("acknowledged draw %d -> %s is on the promoted replica as %q (present=%v)", id, item, got, ok)
		}
		maxAcked = max(maxAcked, id)
	}
	for _, it := range st.Items {
		if it.Quantity < -1 {
			t.Fatalf("item %s over-issued: %d", it.ID, it.Quantity)
		}
	}
	// The promoted node has min_sync_replicas 1 too and no replica yet, so
	// its API would hold answers; ask the engine directly for the next id.
	d, err := eng.Draw(ctx, rpool.DrawRequest{Count: 1})
	if err != nil || d[0].RequestID <= maxAcked {
		t.Fatalf("first draw after promotion %+v (%v), want an id above %d", d, err, maxAcked)
	}
	if len(acked) < 8*40 {
		t.Fatalf("only %d acknowledged draws", len(acked))
	}
}

func TestAcksWait(t *testing.T) {
	a := newAcks()
	ctx := context.Background()
	if err := a.wait(ctx, 5, 1, time.Millisecond); status.Code(toStatus(err)) != codes.Unavailable {
		t.Fatalf("wait with no acks = %v", err)
	}
	a.ack("r1", 4)
	a.ack("r2", 9)
	if err := a.wait(ctx, 5, 1, time.Second); err != nil {
		t.Fatalf("one replica at 9 covers 5: %v", err)
	}
	if err := a.wait(ctx, 5, 2, time.Millisecond); err == nil {
		t.Fatal("two replicas at 5 reported while one is at 4")
	}
	a.ack("r1", 3) // acks never go back
	done := make(chan error, 1)
	go func() { done <- a.wait(ctx, 6, 2, 10*time.Second) }()
	a.ack("r1", 6)
	if err := <-done; err != nil {
		t.Fatalf("waiter not woken by the ack: %v", err)
	}
}
