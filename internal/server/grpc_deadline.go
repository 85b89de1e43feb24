package server

import (
	"context"
	"time"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/tap"
)

// unaryDeadline bounds every unary call of this service by
// connections.body_timeout, its request message included. grpc-go reads a
// call's message before any interceptor runs, and a connection with an
// active call is never idle, so a call whose HEADERS came but whose message
// never does would otherwise pin its connection forever: the gRPC form of a
// slow HTTP body. Streaming calls (DrawStream, StreamWAL, GetSnapshot) live
// as long as their client wants and are left alone; a unary call answers in
// far less than the body timeout.
func unaryDeadline(d time.Duration) tap.ServerInHandle {
	unary := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{rpv1.RewardPool_ServiceDesc, rpv1.Replication_ServiceDesc} {
		for _, m := range sd.Methods {
			unary["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
	}
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if d <= 0 || !unary[info.FullMethodName] {
			return ctx, nil
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		context.AfterFunc(ctx, cancel) // frees the timer when the call ends first
		return ctx, nil
	}
}
