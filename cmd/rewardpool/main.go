// Command rewardpool drives a reward pool. Until the network service lands,
// every subcommand works on a data directory directly through the embedded
// engine (it takes the directory's lock, so run one at a time).
//
//	rewardpool draw     [--data-dir ./data] [--pool default] [--count N] [--key K]
//	rewardpool state    [--data-dir ./data] [--pool default]
//	rewardpool admin    set|add|remove --id ID [--quantity N] [--weight W]
//	rewardpool wal      dump|verify|repair [--data-dir ./data] [--pool default]
//	rewardpool snapshot inspect [--data-dir ./data] [--pool default] [--file F]
//	rewardpool version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name, args, help string
	run              func(args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"draw", "[--count N] [--key K]", "draw from a pool and print the results as JSON", runDraw},
		{"state", "", "print a pool's items and counters as JSON", runState},
		{"admin", "set|add|remove --id ID [--quantity N] [--weight W]", "change an item (through the log)", runAdmin},
		{"wal", "dump|verify|repair", "print, check or repair a pool's write-ahead log", runWAL},
		{"snapshot", "inspect [--file F]", "print a snapshot as JSON", runSnapshot},
		{"version", "", "print the version", func([]string, io.Writer) error { fmt.Println("rewardpool", version); return nil }},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rewardpool <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %-48s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nEvery command takes --data-dir (default ./data) and --pool (default \"default\").\nRun 'rewardpool <command> --help' for its flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stderr)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	for _, c := range commands() {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:], os.Stdout); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return
				}
				fmt.Fprintln(os.Stderr, "rewardpool "+c.name+":", err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "rewardpool: unknown command %q\n\n", os.Args[1])
	usage(os.Stderr)
	os.Exit(2)
}
