package remediate

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

// OptionsFromConfig is the engine set-up the CLI and the agent share: live
// samples and diagnosis as cfg says, and the systemd restarter when
// remediate.restart_unit allows restarts. The caller adds what is its own:
// OnEvent, and a fleet's Store and Rollout.
func OptionsFromConfig(cfg config.Config, log *zap.Logger) Options {
	o := Options{
		Config:   cfg,
		Sampler:  LiveSampler(cfg, log),
		Diagnose: func(s []*sample.Sample) diagnose.Report { return diagnose.Run(s, cfg.Diagnose) },
		Log:      log,
	}
	if cfg.Remediate.RestartUnit {
		o.Restarter = SystemdRestarter{}
	}
	return o
}

// LiveSampler takes samples of the live kernel as cfg's sample section
// says, with the listener watch between them (a single sample has none).
func LiveSampler(cfg config.Config, log *zap.Logger) Sampler {
	return SamplerFunc(func(ctx context.Context, ns string, n int, interval time.Duration) ([]*sample.Sample, error) {
		return sample.Series(ctx, sample.OptionsFrom(cfg.Sample, ns, log), n, interval, cfg.Sample.WatchInterval)
	})
}
