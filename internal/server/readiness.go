package server

// Readiness, liveness, promotion guards and fencing (issue 8).
//
//   - /healthz fails only when restarting the process is the fix: a pool
//     whose log failed refuses every write until it is reopened.
//   - /readyz fails whenever the node should be out of rotation: not
//     recovered, a failed log, fenced by a newer epoch, or (a replica) not
//     connected to its primary or behind it past the configured bounds.
//   - promote refuses what would lose acknowledged draws or split the
//     brain unless forced.
//   - A primary that hears of a newer epoch from a StreamWAL request is
//     fenced: it refuses writes from then on.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/internal/replica"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var (
	// ErrPromoteRefused is the cause of a promotion refused by its guards.
	ErrPromoteRefused = errors.New("promotion refused")
	// ErrFenced is the cause of a write refused by a node that learnt a
	// newer epoch exists: another node was promoted in its place.
	ErrFenced = errors.New("node superseded by a newer epoch")
)

// primaryProbeTimeout bounds promote's check that the primary is down.
const primaryProbeTimeout = 2 * time.Second

// logFailures lists each pool whose log has failed, with the failure.
func (s *Server) logFailures() []string {
	p := s.pools.Load()
	if p == nil {
		return nil
	}
	var out []string
	for _, name := range p.names {
		if err := p.engine(name).Err(); err != nil {
			out = append(out, fmt.Sprintf("pool %q: %v; it refuses writes until the node restarts", name, err))
		}
	}
	return out
}

// notReady lists why the node should be out of rotation (empty: ready).
func (s *Server) notReady() []string {
	if s.pools.Load() == nil || !s.ready.Load() {
		return []string{"recovering or shutting down"}
	}
	reasons := s.logFailures()
	if f := s.fence.Load(); f != nil {
		reasons = append(reasons, *f)
	}
	f := s.follower.Load()
	if f == nil || s.role() != "replica" {
		return reasons
	}
	maxRecs, maxLag := s.cfg.Replication.ReadyMaxLagRecords, time.Duration(s.cfg.Replication.ReadyMaxLag)
	unanswered := f.Unanswered()
	if !f.UpstreamReady() {
		reasons = append(reasons, fmt.Sprintf("upstream %s is not ready itself (a replica that lost its primary, is behind, or a failing node)", f.Primary()))
	}
	for _, st := range f.Status() {
		switch {
		case st.Diverged:
			reasons = append(reasons, fmt.Sprintf("pool %q: its log has parted from primary %s's; it no longer follows", st.Name, f.Primary()))
		case !st.Connected && st.Refused != "":
			reasons = append(reasons, fmt.Sprintf("pool %q: primary %s refuses to stream it: %s", st.Name, f.Primary(), st.Refused))
		case !st.Connected && !st.Synced:
			why := "connecting"
			if st.LastError != "" {
				why = st.LastError
			}
			reasons = append(reasons, fmt.Sprintf("pool %q: has not synced with primary %s yet: %s", st.Name, f.Primary(), why))
		case !st.Connected:
			why := ""
			if st.LastError != "" {
				why = ": " + st.LastError
			}
			reasons = append(reasons, fmt.Sprintf("pool %q: cannot reach primary %s (%s)%s", st.Name, f.Primary(),
				lastHeard(st.LastHeard), why))
		case unanswered > maxLag:
			// Connected, but the primary has stopped answering: a stream
			// from an idle primary says nothing either way.
			reasons = append(reasons, fmt.Sprintf("pool %q: primary %s has not answered health checks for %s (bound %v: replication.ready_max_lag)",
				st.Name, f.Primary(), unanswered.Round(time.Millisecond), maxLag))
		case !st.Synced:
			reasons = append(reasons, fmt.Sprintf("pool %q: catching up with primary %s: applied seq %d of %d", st.Name, f.Primary(),
				st.AppliedSeq, st.PrimarySeq))
		case st.Lag > maxRecs:
			reasons = append(reasons, fmt.Sprintf("pool %q: %d records behind primary %s (bound %d: replication.ready_max_lag_records)",
				st.Name, st.Lag, f.Primary(), maxRecs))
		case st.LagSeconds > maxLag.Seconds():
			reasons = append(reasons, fmt.Sprintf("pool %q: behind primary %s for %.1fs (bound %v: replication.ready_max_lag)",
				st.Name, f.Primary(), st.LagSeconds, maxLag))
		}
	}
	return reasons
}

func lastHeard(t time.Time) string {
	if t.IsZero() {
		return "not heard from since this node started"
	}
	return "last heard from " + time.Since(t).Round(time.Millisecond).String() + " ago"
}

// healthBody is the JSON of /healthz and /readyz.
func healthBody(status string, reasons []string) []byte {
	b, _ := json.Marshal(struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons,omitempty"`
	}{status, reasons})
	return b
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if reasons := s.logFailures(); len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, healthBody("failed", reasons))
		return
	}
	writeJSON(w, http.StatusOK, healthBody("ok", nil))
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if reasons := s.notReady(); len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, healthBody("not ready", reasons))
		return
	}
	writeJSON(w, http.StatusOK, healthBody("ready", nil))
}

// healthGate is the gRPC health service: the registered statuses, except
// that a node which cannot take writes (a failed log, fenced) answers
// NOT_SERVING for the whole server (service ""), so a replica deciding
// whether its primary still serves, and gRPC probes, see the truth.
type healthGate struct {
	*health.Server
	s *Server
}

func (g healthGate) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() == replica.SourceHealthService {
		// Asked by the replicas that follow this node: SERVING only while
		// this node is ready (/readyz), so a cascade turns unready from
		// the top when a node above it loses its own primary.
		if len(g.s.notReady()) > 0 {
			return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	resp, err := g.Server.Check(ctx, req)
	if err == nil && req.GetService() == "" && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING &&
		(len(g.s.logFailures()) > 0 || g.s.fence.Load() != nil) {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return resp, err
}

// fenceErr is the error a write gets on a fenced node.
func (s *Server) fenceErr() error {
	if f := s.fence.Load(); f != nil {
		return errorf(codes.FailedPrecondition, ErrFenced, "%s", *f)
	}
	return nil
}

// epochNewer reports whether epoch theirs is newer than mine: the one
// place that orders epochs for fencing.
func epochNewer(theirs, mine uint64) bool { return theirs > mine }

// fenceIfSuperseded fences this node when it is a primary and a StreamWAL
// request shows pool's history has moved on to a newer epoch elsewhere: a
// replica was promoted in its place (a forced promotion while it lived,
// or a failover it missed), so every write it took from now on would hand
// out request ids the new primary hands out too.
func (s *Server) fenceIfSuperseded(pool string, mine, theirs uint64) {
	if theirs == 0 || !epochNewer(theirs, mine) || s.role() != "primary" {
		return
	}
	msg := fmt.Sprintf("this node was superseded: a node in epoch %d of pool %q exists (this node is in epoch %d), "+
		"so it refuses writes; restart it with --replica-of the new primary", theirs, pool, mine)
	if s.fence.CompareAndSwap(nil, &msg) {
		s.log.Error("rewardpool: fenced: a newer epoch exists; refusing writes until restarted as a replica",
			"pool", pool, "epoch", mine, "newer_epoch", theirs)
	}
}

// promoteGuard says why promoting now would lose acknowledged draws or
// leave two primaries (nil: safe as far as this node can tell).
func (s *Server) promoteGuard(ctx context.Context, f *replica.Follower) error {
	var reasons []string
	pctx, cancel := context.WithTimeout(ctx, primaryProbeTimeout)
	serving, err := f.PrimaryServing(pctx)
	cancel()
	if err == nil && serving {
		reasons = append(reasons, fmt.Sprintf("primary %s is still reachable and serving: stop it first "+
			"(promoting now leaves two nodes taking draws with the same request ids)", f.Primary()))
	}
	for _, st := range f.Status() {
		switch {
		case !st.Synced && st.AppliedSeq == 0:
			why := ""
			if st.LastError != "" {
				why = " (" + st.LastError + ")"
			}
			reasons = append(reasons, fmt.Sprintf("pool %q has never synced with its primary: it holds no records%s, "+
				"and promoting it would hand out request ids the primary already gave", st.Name, why))
		case st.HeardSeq > st.AppliedSeq:
			reasons = append(reasons, fmt.Sprintf("pool %q is behind what it last heard from its primary: applied seq %d, "+
				"the primary had committed %d", st.Name, st.AppliedSeq, st.HeardSeq))
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return errorf(codes.FailedPrecondition, ErrPromoteRefused, "promotion refused: %s. Pass --force to promote anyway "+
		"(it risks two primaries handing out the same request ids, and losing the draws this replica lacks)",
		strings.Join(reasons, "; "))
}

// promote turns this node into a primary: checks the guards (unless
// force), stops following, then promotes every pool's engine. It returns
// the highest resulting epoch and the pools it promoted.
func (s *Server) promote(ctx context.Context, force bool) (uint64, []string, error) {
	p := s.pools.Load()
	if p == nil || !s.ready.Load() {
		return 0, nil, errorf(codes.Unavailable, ErrNotReady, "server is not ready (recovering or shutting down)")
	}
	s.promoteMu.Lock()
	defer s.promoteMu.Unlock()
	if f := s.follower.Load(); f != nil {
		if err := s.promoteGuard(ctx, f); err != nil {
			if !force {
				return 0, nil, err
			}
			s.log.Warn("rewardpool: promoting with --force despite the guards", "why", err)
		}
		for _, st := range f.Status() {
			if st.LastHeard.IsZero() && st.AppliedSeq > 0 {
				s.log.Warn("rewardpool: promoting a pool that has not heard from its primary since this node started; "+
					"draws the primary logged after this replica's last record are not here", "pool", st.Name, "seq", st.AppliedSeq)
			}
		}
		f.Stop()
	}
	defer s.follower.Store(nil) // a primary exports no replica metrics
	var epoch uint64
	var promoted []string
	for _, name := range p.names {
		e := p.engine(name)
		ep, err := e.Promote(ctx)
		if errors.Is(err, rewardpool.ErrNotReplica) {
			ep, err = e.Epoch(), nil
		} else if err == nil {
			promoted = append(promoted, name)
		}
		if err != nil {
			return 0, promoted, fmt.Errorf("promote pool %q: %w", name, err)
		}
		epoch = max(epoch, ep)
	}
	if s.primaryAddr.Swap(nil) != nil {
		s.log.Info("rewardpool: promoted to primary", "epoch", epoch, "pools", promoted, "forced", force)
	}
	return epoch, promoted, nil
}
