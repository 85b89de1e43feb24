package resp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeServer answers each command (an array of bulk strings) with a canned
// reply chosen by the command name, and records the commands it got.
func fakeServer(t *testing.T, replies map[string]string) (addr string, got chan []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan []string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					v, err := ReadValue(r)
					if err != nil {
						return
					}
					var args []string
					for _, a := range v.Array {
						args = append(args, a.Str)
					}
					got <- args
					rep, ok := replies[strings.ToUpper(args[0])]
					if !ok {
						rep = "-ERR unknown command '" + args[0] + "'\r\n"
					}
					if _, err := io.WriteString(c, rep); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), got
}

func TestClientAgainstFakeServer(t *testing.T) {
	addr, got := fakeServer(t, map[string]string{
		"PING":    "+PONG\r\n",
		"INCR":    ":-42\r\n",
		"GET":     "$5\r\nhe\r\nl\r\n", // binary-safe: CRLF inside the payload
		"EMPTY":   "$0\r\n\r\n",
		"MISSING": "$-1\r\n",
		"NILARR":  "*-1\r\n",
		"BAD":     "-NOSCRIPT No matching script. Please use EVAL.\r\n",
		"EVALSHA": "*3\r\n:101\r\n$4\r\ngold\r\n*2\r\n$-1\r\n+ok\r\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	check := func(args []string, want Value, wantErr string) {
		t.Helper()
		v, err := c.Do(args...)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Fatalf("%v: err = %v, want %q", args, err, wantErr)
			}
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("%v: got %#v, want %#v", args, v, want)
		}
		if sent := <-got; !reflect.DeepEqual(sent, args) {
			t.Fatalf("server got %q, want %q", sent, args)
		}
	}
	check([]string{"PING"}, Value{Kind: SimpleString, Str: "PONG"}, "")
	check([]string{"INCR", "k"}, Value{Kind: Integer, Int: -42}, "")
	check([]string{"GET", "k"}, Value{Kind: BulkString, Str: "he\r\nl"}, "")
	check([]string{"EMPTY", ""}, Value{Kind: BulkString, Str: ""}, "")
	check([]string{"MISSING"}, Value{Kind: BulkString, Null: true}, "")
	check([]string{"NILARR"}, Value{Kind: Array, Null: true}, "")
	check([]string{"BAD", "x y"}, Value{Kind: ErrorReply, Str: "NOSCRIPT No matching script. Please use EVAL."},
		"redis: NOSCRIPT No matching script. Please use EVAL.")
	check([]string{"EVALSHA", "abc", "1", "key", "1"}, Value{Kind: Array, Array: []Value{
		{Kind: Integer, Int: 101},
		{Kind: BulkString, Str: "gold"},
		{Kind: Array, Array: []Value{{Kind: BulkString, Null: true}, {Kind: SimpleString, Str: "ok"}}},
	}}, "")

	// The connection is still usable after an error reply.
	var rerr Error
	_, err = c.Do("BAD")
	if !errors.As(err, &rerr) || rerr.Prefix() != "NOSCRIPT" {
		t.Fatalf("error %v: want an Error with prefix NOSCRIPT", err)
	}
	<-got

	// Pipelining: send several, flush once, receive in order.
	for i := 0; i < 50; i++ {
		if err := c.Send("INCR", "k"); err != nil {
			t.Fatal(err)
		}
		if err := c.Send("PING"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if v, err := c.Receive(); err != nil || v.Int != -42 {
			t.Fatalf("pipelined INCR %d: %v %v", i, v, err)
		}
		if v, err := c.Receive(); err != nil || v.Str != "PONG" {
			t.Fatalf("pipelined PING %d: %v %v", i, v, err)
		}
	}
}

func TestReadValueMalformed(t *testing.T) {
	for _, in := range []string{
		"",          // EOF
		"+OK\n",     // no CR
		"?what\r\n", // unknown type
		":12x\r\n",  // bad integer
		":-\r\n",    // bad integer
		":99999999999999999999\r\n",
		"$5\r\nabc\r\n", // short bulk
		"$3\r\nabcXY",   // bulk not terminated by CRLF
		"$-2\r\n",       // bad length
		"*2\r\n:1\r\n",  // short array
		"*-5\r\n",
		"\r\n",
	} {
		_, err := ReadValue(bufio.NewReader(strings.NewReader(in)))
		if err == nil {
			t.Errorf("ReadValue(%q): no error", in)
		}
	}
	deep := strings.Repeat("*1\r\n", MaxDepth+1) + ":1\r\n"
	if _, err := ReadValue(bufio.NewReader(strings.NewReader(deep))); err == nil {
		t.Error("deeply nested array accepted")
	}
}

func TestAppendValueRoundTrip(t *testing.T) {
	vals := []Value{
		{Kind: SimpleString, Str: "OK"},
		{Kind: ErrorReply, Str: "ERR x"},
		{Kind: Integer, Int: -9223372036854775808 + 1},
		{Kind: BulkString, Str: "a\r\nb"},
		{Kind: BulkString, Null: true},
		{Kind: Array, Null: true},
		{Kind: Array, Array: []Value{{Kind: Integer, Int: 7}, {Kind: Array, Array: []Value{}}}},
	}
	for _, v := range vals {
		b := AppendValue(nil, v)
		got, err := ReadValue(bufio.NewReader(strings.NewReader(string(b))))
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip of %q: got %#v, want %#v", b, got, v)
		}
	}
}
