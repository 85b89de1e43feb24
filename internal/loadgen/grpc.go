package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/drawbatch"
)

// grpcTarget holds the ClientConns the workers share. Unary workers call
// through conn w % len(conns); stream workers each open their own stream
// on conn w % len(conns). One HTTP/2 connection carries many concurrent
// streams, so the default is one ClientConn per 16 workers (--grpc-conns
// overrides it).
type grpcTarget struct {
	cfg   *Config
	conns []*grpc.ClientConn
}

// request is what worker w sends.
func (t *grpcTarget) request(w int) *rpv1.DrawRequest {
	return &rpv1.DrawRequest{Pool: t.cfg.poolFor(w), Count: uint32(t.cfg.Count), Compact: t.cfg.Compact}
}

func newGRPCTarget(cfg *Config) (*grpcTarget, error) {
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	t := &grpcTarget{cfg: cfg}
	for i := 0; i < cfg.GRPCConns; i++ {
		// passthrough: the address is used as is, no DNS resolver.
		cc, err := grpc.NewClient("passthrough:///"+cfg.Addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Close()
			return nil, err
		}
		cc.Connect()
		t.conns = append(t.conns, cc)
	}
	return t, nil
}

func (t *grpcTarget) Close() error {
	for _, c := range t.conns {
		c.Close()
	}
	return nil
}

func (t *grpcTarget) NewClient(ctx context.Context, w int) (Client, error) {
	rc := rpv1.NewRewardPoolClient(t.conns[w%len(t.conns)])
	if t.cfg.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.cfg.Token)
	}
	if t.cfg.Mode == ModeStream {
		return &grpcStream{t: t, rc: rc, ctx: ctx, req: t.request(w)}, nil
	}
	call := rc.Draw
	if t.cfg.Noop {
		call = rc.Noop
	}
	return &grpcUnary{t: t, call: call, ctx: ctx, req: t.request(w)}, nil
}

type grpcUnary struct {
	t    *grpcTarget
	call func(context.Context, *rpv1.DrawRequest, ...grpc.CallOption) (*rpv1.DrawResponse, error)
	ctx  context.Context // carries the token metadata
	req  *rpv1.DrawRequest
}

func (c *grpcUnary) Do(ctx context.Context, res []Result) {
	for i := range res {
		start := time.Now()
		resp, err := c.call(c.ctx, c.req)
		res[i].Latency = time.Since(start)
		if err != nil {
			res[i].Err = err
			continue
		}
		c.t.fill(&res[i], resp)
	}
}

func (c *grpcUnary) Close() error { return nil }

// fill checks a reply's draws, plain or compact, and records them in r.
func (t *grpcTarget) fill(r *Result, resp *rpv1.DrawResponse) {
	if m := resp.GetBatch(); m != nil {
		b, err := drawbatch.FromProto(m)
		if err == nil && len(resp.GetDraws()) > 0 {
			err = errors.New("both draws and batch are set")
		}
		if err != nil {
			r.Err = &KindError{"bad_response", err.Error()}
			return
		}
		if b.Len() != t.cfg.Count {
			r.Err = &KindError{"bad_response", fmt.Sprintf("%d draws in the reply, want %d", b.Len(), t.cfg.Count)}
			return
		}
		r.Draws = b.Len()
		r.FailedDraw, r.FailKind = b.Failed()
		return
	}
	draws := resp.GetDraws()
	if len(draws) != t.cfg.Count {
		r.Err = &KindError{"bad_response", fmt.Sprintf("%d draws in the reply, want %d", len(draws), t.cfg.Count)}
		return
	}
	r.Draws = len(draws)
	for _, d := range draws {
		if d.GetError() != "" {
			r.FailedDraw++
			r.FailKind = d.GetError()
		}
	}
}

// grpcStream keeps one DrawStream (or NoopStream) open and sends up to
// Pipeline requests before reading their replies. The stream is opened
// lazily and reopened after an error.
type grpcStream struct {
	t      *grpcTarget
	rc     rpv1.RewardPoolClient
	ctx    context.Context
	req    *rpv1.DrawRequest
	stream grpc.BidiStreamingClient[rpv1.DrawRequest, rpv1.DrawResponse]
	cancel context.CancelFunc
	sent   []time.Time
}

func (c *grpcStream) open() error {
	ctx, cancel := context.WithCancel(c.ctx)
	open := c.rc.DrawStream
	if c.t.cfg.Noop {
		open = c.rc.NoopStream
	}
	s, err := open(ctx)
	if err != nil {
		cancel()
		return err
	}
	c.stream, c.cancel = s, cancel
	return nil
}

func (c *grpcStream) reset() {
	if c.stream != nil {
		c.cancel()
		c.stream, c.cancel = nil, nil
	}
}

func (c *grpcStream) Do(ctx context.Context, res []Result) {
	if c.stream == nil {
		if err := c.open(); err != nil {
			for i := range res {
				res[i].Err = err
			}
			return
		}
	}
	c.sent = c.sent[:0]
	var sendErr error
	for range res {
		c.sent = append(c.sent, time.Now())
		if sendErr = c.stream.Send(c.req); sendErr != nil {
			c.sent = c.sent[:len(c.sent)-1]
			break
		}
	}
	// Replies to what was sent come first, also when a Send failed
	// because the server had already ended the stream.
	for i := range c.sent {
		var resp rpv1.DrawResponse
		if err := c.stream.RecvMsg(&resp); err != nil {
			c.fail(res, i, err)
			return
		}
		res[i].Latency = time.Since(c.sent[i])
		c.t.fill(&res[i], &resp)
	}
	if sendErr != nil {
		// Send reports io.EOF when the server ended the stream; the
		// status comes from Recv.
		if _, err := c.stream.Recv(); err != nil && err != io.EOF {
			sendErr = err
		}
		c.fail(res, len(c.sent), sendErr)
	}
}

// fail marks res[from:] failed with err and drops the stream.
func (c *grpcStream) fail(res []Result, from int, err error) {
	if errors.Is(err, context.Canceled) && c.ctx.Err() == nil {
		err = &KindError{"stream_closed", err.Error()}
	}
	for i := from; i < len(res); i++ {
		res[i].Err = err
	}
	c.reset()
}

func (c *grpcStream) Close() error {
	if c.stream != nil {
		c.stream.CloseSend()
		c.reset()
	}
	return nil
}

// grpcKind names a gRPC status error "grpc:<Code>", or returns "".
func grpcKind(err error) string {
	if s, ok := status.FromError(err); ok && s.Code() != 0 {
		return "grpc:" + s.Code().String()
	}
	return ""
}
