package server

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rewardpool/rewardpool/internal/config"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Review of issue 8: the gRPC analogue of a slow body. A client that
// opens a unary gRPC call (HEADERS) and never sends its message holds the
// call, and so the connection, open: the call is active, so
// MaxConnectionIdle never fires, and no body timeout applies to gRPC.
func TestGRPCCallWithoutMessageIsNotHeldForever(t *testing.T) {
	ts := startServer(t, serverOpts{configure: func(c *config.Config) {
		c.Connections.HandshakeTimeout = config.Duration(500 * time.Millisecond)
		c.Connections.HeaderTimeout = config.Duration(500 * time.Millisecond)
		c.Connections.BodyTimeout = config.Duration(500 * time.Millisecond)
		c.Connections.IdleTimeout = config.Duration(time.Second)
	}})
	c, err := net.Dial("tcp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(http2Preface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/rewardpool.v1.RewardPool/Draw"},
		{":authority", "x"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// Acknowledge every SETTINGS (the mux's, then the gRPC server's) and
	// wait for the server to end the call or the connection.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a gRPC call without its message still holds the connection after 10s")
		}
		if err != nil {
			return // closed
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			return
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				return // answered (an error status in trailers)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				return
			}
		}
	}
}
