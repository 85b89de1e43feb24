package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// clientFlags are the flags of the commands that talk to a running server.
type clientFlags struct {
	addr, token, pool string
	tls, insecure     bool
}

func newClientFlagSet(name, args string, cf *clientFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&cf.addr, "addr", "127.0.0.1:7070", "server address host:port")
	fs.StringVar(&cf.token, "token", "", "bearer token (client_token, or admin_token for admin)")
	fs.StringVar(&cf.pool, "pool", "default", "pool name")
	fs.BoolVar(&cf.tls, "tls", false, "use HTTPS")
	fs.BoolVar(&cf.insecure, "insecure-skip-verify", false, "with --tls: do not verify the server certificate")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool %s %s [flags]\n\nflags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// call sends one HTTP/JSON request and copies the JSON answer to stdout;
// a non-2xx answer becomes an error carrying the server's message.
func (cf *clientFlags) call(method, path string, body any, stdout io.Writer) error {
	scheme := "http"
	client := &http.Client{Timeout: 30 * time.Second}
	if cf.tls {
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: cf.insecure}}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, scheme+"://"+cf.addr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if cf.token != "" {
		req.Header.Set("Authorization", "Bearer "+cf.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is the server running? start it with: rewardpool serve)", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Code, Message string }
		if json.Unmarshal(out, &e) == nil && e.Code != "" {
			return fmt.Errorf("%s (%d %s)", e.Message, resp.StatusCode, e.Code)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = pretty.Bytes()
	}
	_, err = stdout.Write(out)
	return err
}

func runDraw(args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := newClientFlagSet("draw", "[--count N] [--key K]", &cf)
	count := fs.Int("count", 1, "number of draws in the request")
	key := fs.String("key", "", "idempotency key: a retry with the same key returns the first answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := map[string]any{"count": *count}
	if *key != "" {
		body["idempotency_key"] = *key
	}
	return cf.call("POST", "/v1/pools/"+url.PathEscape(cf.pool)+"/draw", body, stdout)
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
	if len(args) == 0 || (args[0] != "set" && args[0] != "remove") {
		return fmt.Errorf("want a subcommand: set (add or change an item) or remove")
	}
	op := args[0]
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

// runPromote turns a replica into a primary (POST /v1/promote, admin token).
func runPromote(args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := newClientFlagSet("promote", "", &cf)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return cf.call("POST", "/v1/promote", nil, stdout)
}
