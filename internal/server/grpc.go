package server

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/replica"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcService implements rewardpool.v1.RewardPool over the service layer.
type grpcService struct {
	rpv1.UnimplementedRewardPoolServer
	s *Server
}

// methodAccess says what each RPC needs; anything not listed (health,
// reflection) is public.
var methodAccess = map[string]access{
	rpv1.RewardPool_Draw_FullMethodName:       accessClient,
	rpv1.RewardPool_DrawStream_FullMethodName: accessClient,
	rpv1.RewardPool_Noop_FullMethodName:       accessClient,
	rpv1.RewardPool_NoopStream_FullMethodName: accessClient,
	rpv1.RewardPool_ListPools_FullMethodName:  accessRead,
	rpv1.RewardPool_GetPool_FullMethodName:    accessRead,
	rpv1.RewardPool_PutItem_FullMethodName:    accessAdmin,
	rpv1.RewardPool_DeleteItem_FullMethodName: accessAdmin,
	rpv1.RewardPool_GetOdds_FullMethodName:    accessRead,
	rpv1.RewardPool_GetPlayer_FullMethodName:  accessRead,
	rpv1.RewardPool_GetRules_FullMethodName:   accessRead,
	rpv1.RewardPool_SetRules_FullMethodName:   accessAdmin,

	rpv1.Replication_StreamWAL_FullMethodName:   accessReplication,
	rpv1.Replication_GetSnapshot_FullMethodName: accessReplication,
	rpv1.Replication_Ack_FullMethodName:         accessReplication,
	rpv1.Replication_Promote_FullMethodName:     accessAdmin,
}

func (s *Server) authorizeGRPC(ctx context.Context, method string) error {
	level := methodAccess[method]
	if level == accessPublic {
		return nil
	}
	var token string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			token = bearer(v[0])
		}
	}
	if err := s.auth.check(level, token); err != nil {
		return toStatus(err)
	}
	return nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.authorizeGRPC(ctx, info.FullMethod); err != nil {
		s.metrics.countRequest("grpc", codes.Unauthenticated)
		return nil, err
	}
	resp, err := handler(ctx, req)
	s.metrics.countRequest("grpc", status.Code(err))
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.authorizeGRPC(ss.Context(), info.FullMethod); err != nil {
		s.metrics.countRequest("grpc_stream", codes.Unauthenticated)
		return err
	}
	err := handler(srv, ss)
	s.metrics.countRequest("grpc_stream", status.Code(err))
	return err
}

// toStatus turns a service error into a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	se := asError(err)
	st := status.New(se.Code, se.Message)
	if se.Reason != "" {
		if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: se.Reason, Domain: errorDomain}); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

// errorDomain is the ErrorInfo domain of the reasons this service sets.
const errorDomain = "rewardpool.v1"

// draw is the one draw path both gRPC methods use.
func (g *grpcService) draw(ctx context.Context, req *rpv1.DrawRequest, transport string) (*rpv1.DrawResponse, error) {
	start := time.Now()
	sc := getScratch()
	defer putScratch(sc)
	if err := g.s.drawInto(ctx, sc, req.GetPool(), int64(req.GetCount()), req.GetIdempotencyKey(), req.GetUserId()); err != nil {
		return nil, toStatus(err)
	}
	g.s.observe(req.GetPool(), transport, start, sc)
	return answer(req, sc), nil
}

// answer is the response for sc: compact when asked for (and possible).
func answer(req *rpv1.DrawRequest, sc *drawScratch) *rpv1.DrawResponse {
	if req.GetCompact() && sc.compact() {
		b := sc.bd.Batch().Proto()
		// The builder's tables go back to the pool with sc; the message
		// lives until it is sent.
		b.ItemIds, b.Errors, b.OutcomeIndex = slices.Clone(b.ItemIds), slices.Clone(b.Errors), slices.Clone(b.OutcomeIndex)
		return &rpv1.DrawResponse{Batch: b}
	}
	return drawResponse(sc.res)
}

func drawResponse(res []rewardpool.DrawResult) *rpv1.DrawResponse {
	out := &rpv1.DrawResponse{Draws: make([]*rpv1.Draw, len(res))}
	// One allocation for all the messages instead of one per draw.
	draws := make([]rpv1.Draw, len(res))
	for i, r := range res {
		d := &draws[i]
		d.RequestId, d.ItemId, d.Error, d.Pity = r.RequestID, r.ItemID, drawOutcome(r), r.Pity
		out.Draws[i] = d
	}
	return out
}

func (g *grpcService) Draw(ctx context.Context, req *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
	return g.draw(ctx, req, "grpc")
}

func (g *grpcService) Noop(ctx context.Context, req *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
	sc := getScratch()
	defer putScratch(sc)
	if err := g.s.noopInto(sc, req.GetPool(), int64(req.GetCount()), req.GetUserId()); err != nil {
		return nil, toStatus(err)
	}
	return answer(req, sc), nil
}

func (g *grpcService) DrawStream(stream grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse]) error {
	check := func(req *rpv1.DrawRequest) error {
		_, _, err := g.s.checkDraw(req.GetPool(), int64(req.GetCount()), req.GetIdempotencyKey(), req.GetUserId())
		return toStatus(err)
	}
	return pipeline(stream, check, func(ctx context.Context, req *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
		return g.draw(ctx, req, "grpc_stream")
	})
}

func (g *grpcService) NoopStream(stream grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse]) error {
	return pipeline(stream, nil, func(ctx context.Context, req *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
		return g.Noop(ctx, req)
	})
}

// streamWindow bounds how many requests of one stream are in flight at once.
const streamWindow = 256

// pipeline serves a bidirectional draw stream. Requests are started as they
// arrive, so a client that sends without waiting gets them group-committed
// together, and answers go back strictly in request order. The first
// request that fails ends the stream with its status, after the answers
// before it. check (optional) runs on each request in arrival order before
// it is started: a request it rejects stops the stream there, so nothing
// after it is performed. A request that fails later, in the engine (a
// failing disk), may have had later requests performed already, which is
// why clients retrying after a broken stream should use idempotency keys.
func pipeline(stream grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse],
	check func(*rpv1.DrawRequest) error,
	do func(context.Context, *rpv1.DrawRequest) (*rpv1.DrawResponse, error)) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	type pending struct {
		done chan struct{}
		resp *rpv1.DrawResponse
		err  error
	}
	queue := make(chan *pending, streamWindow)
	recvErr := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			p := &pending{done: make(chan struct{})}
			var bad error
			if check != nil {
				bad = check(req)
			}
			select {
			case queue <- p:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
			if bad != nil {
				// Answer it in order and start nothing after it.
				p.err = bad
				close(p.done)
				recvErr <- nil
				return
			}
			go func() {
				p.resp, p.err = do(ctx, req)
				close(p.done)
			}()
		}
	}()
	for p := range queue {
		<-p.done
		if p.err != nil {
			cancel()
			for range queue { // let the receiver stop
			}
			return p.err
		}
		if err := stream.Send(p.resp); err != nil {
			cancel()
			for range queue {
			}
			return err
		}
	}
	if err := <-recvErr; err != nil && !isEOF(err) {
		return err
	}
	return nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

func (g *grpcService) ListPools(ctx context.Context, _ *rpv1.ListPoolsRequest) (*rpv1.ListPoolsResponse, error) {
	// A replica learns who it follows from this header (cycle refusal).
	grpc.SetHeader(ctx, metadata.Pairs(replica.NodeIDKey, g.s.nodeID))
	views, err := g.s.listPools(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &rpv1.ListPoolsResponse{}
	for _, v := range views {
		out.Pools = append(out.Pools, poolProto(v))
	}
	return out, nil
}

func (g *grpcService) GetPool(ctx context.Context, req *rpv1.GetPoolRequest) (*rpv1.Pool, error) {
	v, err := g.s.getPool(ctx, req.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	return poolProto(v), nil
}

func (g *grpcService) PutItem(ctx context.Context, req *rpv1.PutItemRequest) (*rpv1.Pool, error) {
	var units *uint64
	if req.Weight != nil {
		u, err := weightUnits(*req.Weight)
		if err != nil {
			return nil, toStatus(err)
		}
		units = &u
	}
	v, err := g.s.putItem(ctx, req.GetPool(), req.GetItemId(), req.Quantity, units)
	if err != nil {
		return nil, toStatus(err)
	}
	return poolProto(v), nil
}

func (g *grpcService) DeleteItem(ctx context.Context, req *rpv1.DeleteItemRequest) (*rpv1.Pool, error) {
	v, err := g.s.deleteItem(ctx, req.GetPool(), req.GetItemId())
	if err != nil {
		return nil, toStatus(err)
	}
	return poolProto(v), nil
}

func poolProto(v poolView) *rpv1.Pool {
	p := &rpv1.Pool{Name: v.Name, LastRequestId: v.State.LastRequestID, Seq: v.State.Seq, Epoch: v.State.Epoch, StateDigest: v.Digest}
	for _, it := range v.State.Items {
		pi := &rpv1.Item{Id: it.ID, Quantity: it.Quantity, Weight: float64(it.Weight) / rewardpool.WeightUnit}
		if n, ok := v.State.Available[it.ID]; ok {
			pi.Available = &n
		}
		p.Items = append(p.Items, pi)
	}
	return p
}
