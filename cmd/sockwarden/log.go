package main

import (
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sockwarden/sockwarden/config"
)

// newLogger builds the process logger. Console on a terminal or when asked,
// JSON otherwise. The agent replaces the core with a journald one when it
// runs under systemd (see agent.go).
func newLogger(cfg config.Config, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch cfg.LogFormat {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	default:
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	ws := zapcore.AddSync(w)
	if f, ok := w.(*os.File); ok {
		ws = zapcore.Lock(f)
	}
	return zap.New(zapcore.NewCore(enc, ws, lvl)), nil
}
