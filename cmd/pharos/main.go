// Command pharos runs one or more Pharos roles; see package app.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	// The zone database, for alertmanager time_intervals and rule
	// templates with a location when the image has no /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/prometheus/common/version"

	"github.com/pharos-tsdb/pharos/cmd/pharos/app"
)

func main() {
	cfg, err := app.Load(os.Args[1:])
	switch {
	case errors.Is(err, app.ErrPrintVersion):
		fmt.Println(version.Print("pharos"))
		return
	case errors.Is(err, app.ErrConfigInvalid):
		fmt.Fprintln(os.Stderr, "pharos:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "pharos:", err)
		os.Exit(2)
	}
	if cfg.VerifyOnly() {
		if err := app.Verify(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "pharos:", err)
			os.Exit(1)
		}
		fmt.Println("OK")
		return
	}
	logger, err := app.NewLogger(cfg.Server, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pharos:", err)
		os.Exit(2)
	}
	app.ApplyGoRuntime(cfg.Server.GoRuntimeConfig, logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := app.New(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		os.Exit(1)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			_ = a.Reload() // Reload logs its own outcome.
		}
	}()
	if err := a.Run(ctx); err != nil {
		logger.Error("stopped with error", "err", err)
		os.Exit(1)
	}
}
