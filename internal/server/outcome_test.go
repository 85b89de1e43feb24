package server

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpcReason returns the ErrorInfo reason a status carries, or "".
func grpcReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// TestFailingDiskOutcomeUnknown (issue 7, defect 6): the call whose batch
// failed to be written or fsynced is told the outcome is unknown (503
// OUTCOME_UNKNOWN over HTTP; UNKNOWN with reason OUTCOME_UNKNOWN over gRPC),
// because the batch may be in the log and come back on restart. Calls
// refused afterwards by the poisoned pool wrote nothing: 503 UNAVAILABLE.
func TestFailingDiskOutcomeUnknown(t *testing.T) {
	var failSync atomic.Bool
	boom := errors.New("injected fsync failure")
	ts := startServer(t, serverOpts{
		closeErrOK: true, // the poisoned engines report the failure at Close
		engineHook: func(pool string, o *rewardpool.Options) {
			o.WALHooks.Sync = func() error {
				if failSync.Load() {
					return boom
				}
				return nil
			}
		},
	})
	ctx := testCtx(t)
	failSync.Store(true)

	code, body := ts.do("POST", "/v1/pools/prizes/draw", "", `{"count": 2, "idempotency_key": "order-1"}`)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("http draw with failing fsync: status %d, want 503; body %s", code, body)
	}
	if e := decodeError(t, body); e.Code != "OUTCOME_UNKNOWN" || !strings.Contains(e.Message, "idempotency key") {
		t.Errorf("http draw with failing fsync: %+v, want code OUTCOME_UNKNOWN and a message telling to retry with the idempotency key", e)
	}
	code, body = ts.do("POST", "/v1/pools/prizes/draw", "", `{"idempotency_key": "order-2"}`)
	if e := decodeError(t, body); code != http.StatusServiceUnavailable || e.Code != "UNAVAILABLE" {
		t.Errorf("http draw on the poisoned pool: %d %+v, want 503 UNAVAILABLE (not applied)", code, e)
	}

	_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "other", Count: 1, IdempotencyKey: "order-3"})
	if status.Code(err) != codes.Unknown || grpcReason(err) != "OUTCOME_UNKNOWN" {
		t.Errorf("grpc draw with failing fsync: %v (reason %q), want UNKNOWN with reason OUTCOME_UNKNOWN", err, grpcReason(err))
	}
	_, err = ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "other", Count: 1})
	if status.Code(err) != codes.Unavailable || grpcReason(err) != "" {
		t.Errorf("grpc draw on the poisoned pool: %v, want UNAVAILABLE", err)
	}
}
