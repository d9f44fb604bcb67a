package app

import (
	"errors"
	"flag"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// GoRuntimeConfig is how the Go runtime trades memory for CPU. The defaults
// are Prometheus's: GOGC 75 (its `runtime.gogc`) and a soft memory limit at
// 90 % of the container's (its `--auto-gomemlimit.ratio`). An ingester's
// heap is mostly the tsdb head, which lives until head compaction, so with
// Go's GOGC 100 a process peaks at twice its live heap; 75 spends a little
// more GC CPU (well under 1 % of a write's CPU, measured) to keep that
// headroom smaller, and the memory limit makes the GC work harder before the
// container is OOM-killed.
type GoRuntimeConfig struct {
	GOGC int `yaml:"gogc"`
	// AutoGoMemLimitRatio of the cgroup memory limit becomes GOMEMLIMIT;
	// 0 turns it off.
	AutoGoMemLimitRatio float64 `yaml:"auto_gomemlimit_ratio"`
}

// RegisterFlags registers the flags under prefix "server.".
func (c *GoRuntimeConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.GOGC, "server.gogc", 75, "Go garbage collector target percentage (GOGC); the GOGC environment variable, when set, wins. Prometheus's default.")
	fs.Float64Var(&c.AutoGoMemLimitRatio, "server.auto-gomemlimit-ratio", 0.9, "Set GOMEMLIMIT to this fraction of the container's memory limit (cgroup), when there is one and GOMEMLIMIT is not set; 0 disables.")
}

// Validate reports the first invalid field.
func (c *GoRuntimeConfig) Validate() error {
	if c.GOGC <= 0 {
		return errors.New("gogc: must be positive")
	}
	if c.AutoGoMemLimitRatio < 0 || c.AutoGoMemLimitRatio > 1 {
		return errors.New("auto_gomemlimit_ratio: must be within [0, 1]")
	}
	return nil
}

// ApplyGoRuntime sets the process's GC percentage and memory limit from c,
// unless the GOGC / GOMEMLIMIT environment variables already set them. It
// changes process-wide state, so main calls it once; App does not, so that
// tests running many Apps in one process leave the runtime alone.
func ApplyGoRuntime(c GoRuntimeConfig, logger *slog.Logger) {
	applyGoRuntime(c, logger, os.Getenv, cgroupMemoryLimit, debug.SetGCPercent, debug.SetMemoryLimit)
}

func applyGoRuntime(c GoRuntimeConfig, logger *slog.Logger, getenv func(string) string, cgroupLimit func() (int64, bool),
	setGCPercent func(int) int, setMemoryLimit func(int64) int64,
) {
	if getenv("GOGC") == "" {
		setGCPercent(c.GOGC)
		logger.Debug("set GOGC", "gogc", c.GOGC)
	}
	if c.AutoGoMemLimitRatio == 0 || getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, ok := cgroupLimit()
	if !ok {
		return
	}
	memLimit := int64(float64(limit) * c.AutoGoMemLimitRatio)
	setMemoryLimit(memLimit)
	logger.Info("set GOMEMLIMIT from the container's memory limit", "cgroup_limit_bytes", limit, "ratio", c.AutoGoMemLimitRatio, "gomemlimit_bytes", memLimit)
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2,
// then v1); false when there is none or it cannot be read.
func cgroupMemoryLimit() (int64, bool) {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		limit, ok := parseCgroupLimit(string(b))
		return limit, ok
	}
	return 0, false
}

// parseCgroupLimit reads memory.max ("max" or bytes) or v1's
// memory.limit_in_bytes, whose "no limit" is a huge page-aligned number.
func parseCgroupLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "max" || s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0, false
	}
	return n, true
}
