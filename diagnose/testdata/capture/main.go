// Command capture records live sample series from lab scenarios as JSON
// fixtures for diagnose's golden tests (diagnose/testdata/series). It runs
// each scenario in its own throwaway namespace (root needed) and takes the
// same series `sockwarden diagnose --netns` takes.
//
//	go run ./diagnose/testdata/capture -out diagnose/testdata/series somaxconn-capped backlog-capped
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/lab"
	"github.com/sockwarden/sockwarden/sample"
)

func main() {
	out := flag.String("out", "diagnose/testdata/series", "directory for NAME.json")
	n := flag.Int("samples", 2, "samples per series")
	interval := flag.Duration("interval", 2*time.Second, "time between samples")
	warm := flag.Duration("warm", time.Second, "time the load runs before the first sample")
	flag.Parse()
	if err := run(*out, *n, *interval, *warm, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "capture:", err)
		os.Exit(1)
	}
}

func run(out string, n int, interval, warm time.Duration, names []string) error {
	cfg := config.Defaults()
	for _, name := range names {
		ctx := context.Background()
		env, err := lab.Start(ctx, name, lab.Options{Duration: warm + time.Duration(n)*interval + 10*time.Second})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		time.Sleep(warm)
		series, err := sample.Series(ctx, sample.OptionsFrom(cfg.Sample, env.Netns, nil), n, interval, cfg.Sample.WatchInterval)
		stopErr := env.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if stopErr != nil {
			return fmt.Errorf("%s: stop: %w", name, stopErr)
		}
		b, err := json.MarshalIndent(series, "", " ")
		if err != nil {
			return err
		}
		p := filepath.Join(out, name+".json")
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %d samples -> %s\n", name, len(series), p)
	}
	return nil
}
