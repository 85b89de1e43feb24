package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rewardpool/rewardpool"
)

// demoItems is the built-in pool a fresh data directory starts with.
var demoItems = []rewardpool.Item{
	{ID: "diamond", Quantity: 100, Weight: 10 * rewardpool.WeightUnit},
	{ID: "gold", Quantity: 1000, Weight: 20 * rewardpool.WeightUnit},
	{ID: "mud", Quantity: rewardpool.Unlimited, Weight: 70 * rewardpool.WeightUnit},
}

// poolFlags are the flags every command shares.
type poolFlags struct {
	dataDir, pool string
	verbose       bool
}

func newFlagSet(name, args string, pf *poolFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&pf.dataDir, "data-dir", "./data", "data directory; each pool lives in <data-dir>/<pool>")
	fs.StringVar(&pf.pool, "pool", "default", "pool name")
	fs.BoolVar(&pf.verbose, "v", false, "log recovery and snapshot messages to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool %s %s [flags]\n\nflags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

func (pf *poolFlags) dir() string { return filepath.Join(pf.dataDir, pf.pool) }

func (pf *poolFlags) logger() *slog.Logger {
	if pf.verbose {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// open opens the pool, seeding the demo catalog into the default pool only.
func (pf *poolFlags) open() (*rewardpool.Engine, error) {
	o := rewardpool.Options{Logger: pf.logger()}
	if pf.pool == "default" {
		o.Items = demoItems
	}
	return rewardpool.Open(pf.dir(), o)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type drawJSON struct {
	RequestID uint64 `json:"request_id"`
	ItemID    string `json:"item_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

func runDraw(args []string, stdout io.Writer) (err error) {
	var pf poolFlags
	fs := newFlagSet("draw", "[--count N] [--key K]", &pf)
	count := fs.Int("count", 1, "number of draws")
	key := fs.String("key", "", "idempotency key: a retry with the same key returns the first answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, err := pf.open()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.Close()) }()
	res, err := e.Draw(context.Background(), rewardpool.DrawRequest{Count: *count, IdempotencyKey: *key})
	if err != nil {
		return err
	}
	out := struct {
		Draws []drawJSON `json:"draws"`
	}{Draws: make([]drawJSON, len(res))}
	for i, r := range res {
		out.Draws[i] = drawJSON{RequestID: r.RequestID, ItemID: r.ItemID}
		if errors.Is(r.Err, rewardpool.ErrPoolEmpty) {
			out.Draws[i].Error = "POOL_EMPTY"
		}
	}
	return printJSON(stdout, out)
}

type itemJSON struct {
	ID       string          `json:"id"`
	Quantity int64           `json:"quantity"`
	Weight   json.RawMessage `json:"weight"`
}

func itemsJSON(items []rewardpool.Item) []itemJSON {
	out := make([]itemJSON, len(items))
	for i, it := range items {
		out[i] = itemJSON{ID: it.ID, Quantity: it.Quantity, Weight: json.RawMessage(formatWeight(it.Weight))}
	}
	return out
}

func runState(args []string, stdout io.Writer) (err error) {
	var pf poolFlags
	fs := newFlagSet("state", "", &pf)
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, err := pf.open()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.Close()) }()
	st, err := e.State(context.Background())
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{
		"name": pf.pool, "seq": st.Seq, "epoch": st.Epoch,
		"last_request_id": st.LastRequestID, "items": itemsJSON(st.Items),
	})
}

func runAdmin(args []string, stdout io.Writer) (err error) {
	if len(args) == 0 || (args[0] != "set" && args[0] != "add" && args[0] != "remove") {
		return fmt.Errorf("want a subcommand: set, add or remove")
	}
	op := args[0]
	var pf poolFlags
	fs := newFlagSet("admin "+op, "--id ID [--quantity N] [--weight W]", &pf)
	id := fs.String("id", "", "item id (required)")
	qty := fs.Int64("quantity", 0, "remaining quantity, -1 for unlimited (set adds the item if missing)")
	weight := fs.String("weight", "1", "relative weight, a decimal with up to 6 places")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("--id is required")
	}
	w, err := rewardpool.ParseWeight(*weight)
	if err != nil && op != "remove" {
		return fmt.Errorf("--weight: %w", err)
	}
	e, err := pf.open()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.Close()) }()
	ctx := context.Background()
	it := rewardpool.Item{ID: *id, Quantity: *qty, Weight: w}
	switch op {
	case "set":
		err = e.PutItem(ctx, it)
	case "add":
		err = e.AddItem(ctx, it)
	case "remove":
		err = e.RemoveItem(ctx, *id)
	}
	if err != nil {
		return err
	}
	st, err := e.State(ctx)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"name": pf.pool, "seq": st.Seq, "items": itemsJSON(st.Items)})
}
