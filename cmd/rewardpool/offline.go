package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// poolFlags are the flags every command shares.
type poolFlags struct {
	dataDir, pool string
	verbose       bool
}

// newFlagSet makes the flags of an offline tool; verbose adds -v for the
// tools that log (those that open the log).
func newFlagSet(name, args string, pf *poolFlags, verbose bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&pf.dataDir, "data-dir", "./data", "data directory; each pool lives in <data-dir>/<pool>")
	fs.StringVar(&pf.pool, "pool", "default", "pool name")
	if verbose {
		fs.BoolVar(&pf.verbose, "v", false, "log what the log reader finds (torn tails, segments) to stderr")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool %s [flags]\n\nflags:\n", strings.TrimSpace(name+" "+args))
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type itemJSON struct {
	ID       string          `json:"id"`
	Quantity int64           `json:"quantity"`
	Weight   json.RawMessage `json:"weight"`
}
