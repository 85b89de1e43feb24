// Command noopserver is the bare-transport floor for the benchmarks of
// scripts/bench-ratios.py: a plain net/http server and a plain gRPC server
// that answer rewardpool's draw calls with placeholders, doing nothing else
// (no pool, no log, no metrics, no auth). Its HTTP handler reads the body
// and writes a fixed-shape answer, which is what "a bare net/http handler"
// costs; its gRPC service answers Draw and DrawStream (one answer per
// request, in order, no pipelining of its own).
//
//	go run ./scripts/noopserver --http 127.0.0.1:0 --grpc 127.0.0.1:0
//
// It prints "http ADDR" and "grpc ADDR" once listening, and stops on
// SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"google.golang.org/grpc"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:0", "HTTP listen address")
	grpcAddr := flag.String("grpc", "127.0.0.1:0", "gRPC listen address")
	flag.Parse()

	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(serveHTTP)}
	gs := grpc.NewServer()
	rpv1.RegisterRewardPoolServer(gs, noop{})
	go hs.Serve(hl)
	go gs.Serve(gl)
	fmt.Printf("http %s\ngrpc %s\n", hl.Addr(), gl.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	gs.Stop()
	hs.Close()
}

// serveHTTP answers any POST with count placeholder draws (count from the
// JSON body, 1 by default), in the plain answer's shape.
func serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req struct {
		Count int `json:"count"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	n := max(req.Count, 1)
	b := make([]byte, 0, 16+40*n)
	b = append(b, `{"draws":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"request_id":`...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, `,"item_id":"noop"}`...)
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

type noop struct {
	rpv1.UnimplementedRewardPoolServer
}

func answer(req *rpv1.DrawRequest) *rpv1.DrawResponse {
	n := max(int(req.GetCount()), 1)
	resp := &rpv1.DrawResponse{Draws: make([]*rpv1.Draw, n)}
	for i := range resp.Draws {
		resp.Draws[i] = &rpv1.Draw{RequestId: uint64(i + 1), ItemId: "noop"}
	}
	return resp
}

func (noop) Draw(_ context.Context, req *rpv1.DrawRequest) (*rpv1.DrawResponse, error) {
	return answer(req), nil
}

func (noop) DrawStream(s grpc.BidiStreamingServer[rpv1.DrawRequest, rpv1.DrawResponse]) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(answer(req)); err != nil {
			return err
		}
	}
}
