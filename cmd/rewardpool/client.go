package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rewardpool/rewardpool/internal/drawbatch"
)

// clientFlags are the flags of the commands that talk to a running server.
type clientFlags struct {
	addr, token, pool string
	tlsFlags
}

func newClientFlagSet(name, args string, cf *clientFlags) *flag.FlagSet {
	fs := newNodeFlagSet(name, args, cf)
	fs.StringVar(&cf.pool, "pool", "default", "pool name")
	return fs
}

// newNodeFlagSet is newClientFlagSet for commands that act on the whole
// node (promote): no --pool.
func newNodeFlagSet(name, args string, cf *clientFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&cf.addr, "addr", "127.0.0.1:7070", "server address: host:port, http://host:port or https://host:port")
	fs.StringVar(&cf.token, "token", "", "bearer token (client_token, or admin_token for admin)")
	cf.tlsFlags.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool %s [flags]\n\nflags:\n", strings.TrimSpace(name+" "+args))
		fs.PrintDefaults()
	}
	return fs
}

// call sends one HTTP/JSON request and copies the JSON answer to stdout,
// indented; a non-2xx answer becomes an error carrying the server's message.
func (cf *clientFlags) call(method, path string, body any, stdout io.Writer) error {
	out, err := cf.fetch(method, path, body)
	if err != nil {
		return err
	}
	return printIndented(stdout, out)
}

func printIndented(stdout io.Writer, out []byte) error {
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = pretty.Bytes()
	}
	_, err := stdout.Write(out)
	return err
}

// fetch sends one HTTP/JSON request and returns the 2xx answer's body.
func (cf *clientFlags) fetch(method, path string, body any) ([]byte, error) {
	host, https, err := parseAddr(cf.addr)
	if err != nil {
		return nil, err
	}
	tc, err := cf.tlsFlags.config(https, cf.addr)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	client := &http.Client{Timeout: 30 * time.Second}
	if tc != nil {
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: tc}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, scheme+"://"+host+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if cf.token != "" {
		req.Header.Set("Authorization", "Bearer "+cf.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is the server running? start it with: rewardpool serve)", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Code, Message string }
		if json.Unmarshal(out, &e) == nil && e.Code != "" {
			return nil, fmt.Errorf("%s (%d %s)", e.Message, resp.StatusCode, e.Code)
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// compactFrom is the count from which draw asks for the compact answer
// (and prints it expanded, in the plain shape).
const compactFrom = 100

func runDraw(args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := newClientFlagSet("draw", "[--count N] [--key K] [--user U] [--compact]", &cf)
	count := fs.Int("count", 1, "number of draws in the request")
	key := fs.String("key", "", "idempotency key: a retry with the same key returns the first answer")
	user := fs.String("user", "", "the player the draws are for (pools with player rules need one)")
	raw := fs.Bool("compact", false, fmt.Sprintf("print the compact answer as the server sent it ({\"batch\": ...}); from --count %d on, draw asks for it anyway (not with --user) and prints it expanded", compactFrom))
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := map[string]any{"count": *count}
	if *key != "" {
		body["idempotency_key"] = *key
	}
	if *user != "" {
		body["user_id"] = *user
	}
	path := "/v1/pools/" + url.PathEscape(cf.pool) + "/draw"
	// A player's draws may carry pity, which the compact form does not
	// (the server answers them plainly): expanding would drop it.
	if !*raw && (*count < compactFrom || *user != "") {
		return cf.call("POST", path, body, stdout)
	}
	body["compact"] = true
	out, err := cf.fetch("POST", path, body)
	if err != nil {
		return err
	}
	if *raw {
		return printIndented(stdout, out)
	}
	draws, err := drawbatch.DecodeJSON(out, nil)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return printIndented(stdout, plainDraws(draws))
}

// plainDraws is the server's plain answer for draws.
func plainDraws(draws []drawbatch.Draw) []byte {
	b := []byte(`{"draws":[`)
	for i, d := range draws {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"request_id":%d,`, d.RequestID)
		field, val := "item_id", d.ItemID
		if d.Error != "" {
			field, val = "error", d.Error
		}
		q, _ := json.Marshal(val)
		b = fmt.Appendf(b, `%q:%s}`, field, q)
	}
	return append(b, "]}"...)
}

func runState(args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := newClientFlagSet("state", "[--all]", &cf)
	all := fs.Bool("all", false, "list every pool")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *all {
		return cf.call("GET", "/v1/pools", nil, stdout)
	}
	return cf.call("GET", "/v1/pools/"+url.PathEscape(cf.pool), nil, stdout)
}

func runAdmin(args []string, stdout io.Writer) error {
	op, err := subcommand("admin", args,
		[2]string{"set", "add an item, or change its quantity and/or weight"},
		[2]string{"remove", "remove an item from the pool's catalog"})
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newClientFlagSet("admin "+op, "--id ID [--quantity N] [--weight W]", &cf)
	id := fs.String("id", "", "item id (required)")
	qty := fs.String("quantity", "", "remaining quantity, -1 for unlimited (set; required for a new item)")
	weight := fs.String("weight", "", "relative weight, up to 6 decimal places (set; required for a new item)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("--id is required")
	}
	path := "/v1/pools/" + url.PathEscape(cf.pool) + "/items/" + url.PathEscape(*id)
	if op == "remove" {
		return cf.call("DELETE", path, nil, stdout)
	}
	body := map[string]any{}
	if *qty != "" {
		body["quantity"] = json.Number(*qty)
	}
	if *weight != "" {
		body["weight"] = json.Number(*weight)
	}
	if len(body) == 0 {
		return fmt.Errorf("give --quantity and/or --weight")
	}
	return cf.call("PUT", path, body, stdout)
}

// runPromote turns a replica into a primary (POST /v1/promote, admin
// token). It promotes every pool of the node (so there is no --pool) and
// prints the new epoch and the pools it promoted. The server refuses while
// the primary still serves, or when a pool never synced or is behind what
// it heard from the primary, unless --force.
func runPromote(args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := newNodeFlagSet("promote", "[--force]", &cf)
	force := fs.Bool("force", false, "promote even if the primary still serves or this replica is behind or never synced: "+
		"risks two primaries handing out the same request ids, and losing the draws this replica lacks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("promote takes no arguments (it promotes every pool of the node), got %q", fs.Args())
	}
	var body any
	if *force {
		body = map[string]bool{"force": true}
	}
	return cf.call("POST", "/v1/promote", body, stdout)
}
