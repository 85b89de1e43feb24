package server

import (
	"errors"
	"github.com/rewardpool/rewardpool/internal/failpoint"
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
			failpoint.OnSync(o, func() error {
				if failSync.Load() {
					return boom
				}
				return nil
			})
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

// TestIdempotencyKeyMismatch (issue 7, defect 8): a key reused with another
// count is refused with its own code (HTTP 422 IDEMPOTENCY_KEY_MISMATCH,
// gRPC FAILED_PRECONDITION with that reason) and draws nothing; the same
// count still gets the first answer.
func TestIdempotencyKeyMismatch(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := testCtx(t)
	first := ts.mustDo("POST", "/v1/pools/prizes/draw", "", `{"count": 2, "idempotency_key": "order-9"}`, http.StatusOK)
	before := ts.poolJSON("prizes", "")

	code, body := ts.do("POST", "/v1/pools/prizes/draw", "", `{"count": 3, "idempotency_key": "order-9"}`)
	if e := decodeError(t, body); code != http.StatusUnprocessableEntity || e.Code != "IDEMPOTENCY_KEY_MISMATCH" || !strings.Contains(e.Message, "order-9") {
		t.Errorf("http retry with another count: %d %+v, want 422 IDEMPOTENCY_KEY_MISMATCH naming the key", code, e)
	}
	_, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", Count: 1, IdempotencyKey: "order-9"})
	if status.Code(err) != codes.FailedPrecondition || grpcReason(err) != "IDEMPOTENCY_KEY_MISMATCH" {
		t.Errorf("grpc retry with another count: %v (reason %q), want FAILED_PRECONDITION with reason IDEMPOTENCY_KEY_MISMATCH", err, grpcReason(err))
	}
	if after := ts.poolJSON("prizes", ""); after != before {
		t.Errorf("refused retries changed state:\nbefore %s\nafter  %s", before, after)
	}
	if again := ts.mustDo("POST", "/v1/pools/prizes/draw", "", `{"count": 2, "idempotency_key": "order-9"}`, http.StatusOK); string(again) != string(first) {
		t.Errorf("retry with the same count: %s, want %s", again, first)
	}
}
