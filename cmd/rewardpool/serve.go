package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/internal/server"
)

func runServe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML (or JSON) config file; without one, serve the built-in demo pool \"default\"")
	listen := fs.String("listen", "", "address to listen on, overrides the config (default 127.0.0.1:7070)")
	dataDir := fs.String("data-dir", "", "data directory, overrides the config (default ./data)")
	pprofAddr := fs.String("pprof", "", "serve Go's /debug/pprof on this separate address (e.g. 127.0.0.1:6060); off by default")
	replicaOf := fs.String("replica-of", "", "run as a read-only replica of the primary at HOST:PORT, overrides the config's replica_of")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rewardpool serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--replica-of HOST:PORT]\n\n"+
			"Serves gRPC (h2c) and HTTP/JSON on one port. SIGINT/SIGTERM: stop accepting, finish\n"+
			"in-flight requests, fsync, snapshot, exit 0.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg *config.Config
	var err error
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	} else {
		cfg = config.Default()
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *replicaOf != "" {
		cfg.ReplicaOf = *replicaOf
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg)
	if *cfgPath == "" {
		log.Info("rewardpool: no --config given; serving the built-in demo pool", "pool", "default", "data_dir", cfg.DataDir)
	}

	// Catch signals before anything is announced: a supervisor that sends
	// SIGTERM as soon as it sees the "listening" line gets a clean stop.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	srv := server.New(cfg, log, readBuildVersion().short())
	if err := srv.Listen(); err != nil {
		return err
	}

	recovered := make(chan error, 1)
	go func() { recovered <- srv.Recover() }()
	select {
	case err := <-recovered:
		if err != nil {
			srv.Shutdown(context.Background())
			return err
		}
	case s := <-sig:
		log.Info("rewardpool: signal during recovery; stopping", "signal", s.String())
		if err := <-recovered; err != nil {
			return errors.Join(err, srv.Shutdown(context.Background()))
		}
		return shutdown(srv, cfg, log)
	}
	s := <-sig
	log.Info("rewardpool: shutting down", "signal", s.String(), "timeout", time.Duration(cfg.ShutdownTimeout))
	return shutdown(srv, cfg, log)
}

func shutdown(srv *server.Server, cfg *config.Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	return srv.Shutdown(ctx)
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// servePprof serves the runtime profiles on their own listener, so they are
// never reachable through the API port and its auth.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("rewardpool: pprof listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
