// Command rewardpool is the one binary of rewardpool: the server, its
// clients, a load generator and the offline tools for the data directory.
//
//	rewardpool serve    [--config FILE] [--listen ADDR] [--data-dir DIR]
//	rewardpool draw     [--addr A] [--pool P] [--count N] [--key K]
//	rewardpool state    [--addr A] [--pool P | --all]
//	rewardpool admin    set|remove --id ID [--quantity N] [--weight W]
//	rewardpool promote  [--addr A] [--token T] [--force]
//	rewardpool bench    [--addr A] [--mode unary|stream|http|redis] ...
//	rewardpool wal      dump|verify|repair|reseed [--data-dir D] [--pool P]
//	rewardpool snapshot inspect [--data-dir D] [--pool P] [--file F]
//	rewardpool version | --version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type command struct {
	name, args, help string
	run              func(args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "[--config F] [--listen A] [--data-dir D]", "run the server (gRPC + HTTP/JSON on one port)", runServe},
		{"draw", "[--addr A] [--count N] [--key K]", "draw from a running server, print JSON", runDraw},
		{"state", "[--addr A] [--pool P | --all]", "print a pool's items and counters as JSON", runState},
		{"admin", "set|remove --id ID [--quantity N] [--weight W]", "add, change or remove an item (admin token)", runAdmin},
		{"promote", "--addr HOST:PORT --token T [--force]", "turn a replica into a primary, every pool (admin token)", runPromote},
		{"wal", "dump|verify|repair|reseed [--data-dir D] [--pool P]", "offline: print, check or repair a pool's log; reseed a pool whose state is lost", runWAL},
		{"snapshot", "inspect [--data-dir D] [--pool P]", "offline: print a snapshot as JSON", runSnapshot},
		{"bench", "[--mode unary|stream|http|redis] [--concurrency N] [--duration D]", "load generator: draws/s and latency percentiles", runBench},
		{"version", "", "print the version, VCS revision and Go version (also --version)", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rewardpool <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %-48s %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nClient commands take --addr (host:port or http(s)://host:port, default 127.0.0.1:7070),\n--token and, for a TLS server, --cacert; offline tools take --data-dir (default ./data) and\n--pool (default \"default\") and must not run beside the server.\nRun 'rewardpool <command> --help' for its flags.")
}

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		readBuildVersion().write(os.Stdout)
		return
	}
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

// subcommand returns the subcommand args[0] names, one of subs. With -h,
// --help or help there instead, it prints the command's usage (what each
// subcommand does) and returns flag.ErrHelp, so "rewardpool admin --help"
// works like "rewardpool admin set --help".
func subcommand(name string, args []string, subs ...[2]string) (string, error) {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s[0]
	}
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprintf(os.Stderr, "usage: rewardpool %s %s [flags]\n\nsubcommands:\n", name, strings.Join(names, "|"))
			for _, s := range subs {
				fmt.Fprintf(os.Stderr, "  %-8s %s\n", s[0], s[1])
			}
			fmt.Fprintf(os.Stderr, "\nRun 'rewardpool %s <subcommand> --help' for its flags.\n", name)
			return "", flag.ErrHelp
		}
		for _, n := range names {
			if args[0] == n {
				return n, nil
			}
		}
	}
	return "", fmt.Errorf("want a subcommand: %s (see rewardpool %s --help)", strings.Join(names, ", "), name)
}
