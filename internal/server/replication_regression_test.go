package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func stopNode(t *testing.T, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// Regression (found in review): a StreamWAL subscriber that stops reading (a stalled or
// SIGSTOPped cascaded replica, a partition without RST) makes Shutdown hang
// past its deadline: Shutdown closes the streamers before it stops gRPC,
// Streamer.Close waits for the sink goroutine, which is blocked in
// ss.Send on flow control, and the handler that would end the stream
// waits for sink.Close, which comes only after the goroutine returns.
// The same wait holds Reinstall (bootstrap / cutTail) under ent.mu.
func TestShutdownWithStalledSubscriber(t *testing.T) {
	p := startNode(t, "", "", nil)
	conn, err := grpc.NewClient("passthrough:///"+p.srv.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStaticStreamWindowSize(64<<10), grpc.WithStaticConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := rpv1.NewReplicationClient(conn).StreamWAL(withToken(context.Background(), replToken),
		&rpv1.StreamWALRequest{Pool: "prizes", FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	// Never Recv: fill the stream's flow-control window.
	drawLoad(t, p, "prizes", 4, 600, 100)
	time.Sleep(300 * time.Millisecond)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		done <- p.srv.Shutdown(ctx)
	}()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
		t.Errorf("Shutdown with a 1s deadline still blocked after 6s: a non-reading StreamWAL client wedges Streamer.Close")
		conn.Close() // unwedge so the test can end
		<-done
	}
}

// Regression (found in review): commonSeq only looks for records of an epoch newer than the
// requester's. A requester in a newer epoch than this node (a promoted
// replica pointed back at the stale former primary, which was restarted
// as a primary) gets common = min(its last, our last) and cuts its own
// newer-epoch records (the EPOCH record and acknowledged draws), then
// follows the stale node. It should be refused without a cut point.
func TestNewerEpochRequesterCutsItsOwnAcknowledgedRecords(t *testing.T) {
	admin := func(c *config.Config) { c.AdminToken = "adm" }
	pdir, rdir := t.TempDir(), t.TempDir()
	a := startNode(t, pdir, "", admin)
	addrA := a.srv.Addr().String()
	b := startNode(t, rdir, addrA, admin)
	drawLoad(t, a, "prizes", 2, 20, 2)
	base := waitSame(t, "prizes", a, b)
	stopNode(t, a)
	if code, body := b.do("POST", "/v1/promote", "adm", ""); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	for range 10 {
		b.draw("prizes", "", `{"count":1}`) // acknowledged in epoch 2
	}
	promoted := b.getPool("prizes", "")
	stopNode(t, b)

	// The stale former primary comes back as a primary; the promoted node
	// is (mis)pointed at it.
	startNode(t, pdir, "", func(c *config.Config) { admin(c); c.Listen = addrA })
	b2 := startNode(t, rdir, addrA, admin)
	// The older node must refuse it (the follower then marks the pool
	// diverged), and the newer history must stay whole.
	deadline := time.Now().Add(10 * time.Second)
	for !divergedPool(replicationJSON(t, b2), "prizes") {
		if time.Now().After(deadline) {
			t.Fatalf("newer-epoch node was never refused:\n%s", b2.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := b2.getPool("prizes", "")
	files, _ := filepath.Glob(filepath.Join(rdir, "prizes", "divergent-*.log"))
	if got.Seq != promoted.Seq || got.Epoch != promoted.Epoch || got.StateDigest != promoted.StateDigest || len(files) != 0 {
		t.Fatalf("epoch-%d node changed: now seq %d epoch %d (was seq %d epoch %d, base %d); %d divergent files",
			promoted.Epoch, got.Seq, got.Epoch, promoted.Seq, promoted.Epoch, base.Seq, len(files))
	}
}
