package app

import (
	"io"
	"log/slog"

	"github.com/prometheus/common/promslog"
)

// NewLogger returns the process logger: logfmt (Prometheus's style) unless
// the server config asks for json.
func NewLogger(cfg ServerConfig, w io.Writer) (*slog.Logger, error) {
	lvl := promslog.NewLevel()
	if err := lvl.Set(cfg.LogLevel); err != nil {
		return nil, err
	}
	format := promslog.NewFormat()
	if err := format.Set(cfg.LogFormat); err != nil {
		return nil, err
	}
	return promslog.New(&promslog.Config{Level: lvl, Format: format, Writer: w}), nil
}
