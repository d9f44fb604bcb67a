package app

import (
	"bytes"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v2"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/gossip"
	"github.com/pharos-tsdb/pharos/ingest/distributor"
	"github.com/pharos-tsdb/pharos/ingest/scraper"
	"github.com/pharos-tsdb/pharos/limits"
	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/querier/frontend"
	"github.com/pharos-tsdb/pharos/ruler"
	"github.com/pharos-tsdb/pharos/storage/ingester"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
)

// Roles a process can run. RoleAll expands to every role that exists.
const (
	RoleAll         = "all"
	RoleDistributor = "distributor"
	RoleIngester    = "ingester"
	RoleQuerier     = "querier"
	RoleScraper     = "scraper"
	RoleRuler       = "ruler"
	RoleNotifier    = "notifier"
)

// availableRoles are the roles this build implements, in start order.
var availableRoles = []string{RoleIngester, RoleDistributor, RoleQuerier, RoleScraper, RoleNotifier, RoleRuler}

// plannedRoles are named in the design but not built yet; asking for one is
// a clear error rather than a silently missing component.
var plannedRoles = []string{}

//go:embed default.yml
var defaultConfigYAML []byte

//go:embed alertmanager.default.yml
var defaultAlertmanagerYAML []byte

// Config is the whole configuration of a Pharos process: the YAML file
// (-config.file) laid over the flag defaults, with explicitly set flags laid
// over the file.
type Config struct {
	Target         string               `yaml:"target"`
	Server         ServerConfig         `yaml:"server"`
	IngesterClient IngesterClientConfig `yaml:"ingester_client"`
	Storage        ingester.Config      `yaml:"storage"`
	Distributor    distributor.Config   `yaml:"distributor"`
	Querier        querier.Config       `yaml:"querier"`
	QueryFrontend  frontend.Config      `yaml:"query_frontend"`
	Memberlist     gossip.Config        `yaml:"memberlist"`
	Ring           cluster.Config       `yaml:"ring"`
	Notifier       NotifierConfig       `yaml:"notifier"`
	// Scrape is a Prometheus configuration file's `global` and
	// `scrape_configs`, verbatim; nil means no scraping. It is loaded by
	// Prometheus's own config.Load from the `scrape` section.
	Scrape    *promconfig.Config `yaml:"-"`
	RawScrape yaml.MapSlice      `yaml:"scrape"`
	// Scraper is how scrapers share the targets of Scrape.
	Scraper scraper.Config `yaml:"scraper"`
	// Rules are Prometheus rule files; Ruler is how rulers evaluate them.
	Rules ruler.RulesConfig `yaml:"rules"`
	Ruler ruler.Config      `yaml:"ruler"`
	// Multitenancy: see tenants.go.
	Multitenancy MultitenancyConfig `yaml:"multitenancy"`
	// Limits are every tenant's default limits; RuntimeConfig names the
	// file of per-tenant overrides (see limits.go).
	Limits        limits.Limits        `yaml:"limits"`
	RuntimeConfig limits.RuntimeConfig `yaml:"runtime_config"`

	// file is the configuration file this Config was loaded from, if any.
	file string
	// args are the command-line arguments it was loaded with, for reloads
	// and /api/v1/status/flags.
	args []string
	// flags holds every flag's value as loaded.
	flags map[string]string
	// verifyOnly is -config.verify: check the configuration and exit.
	verifyOnly bool
}

// ServerConfig holds the listeners and process-wide settings.
type ServerConfig struct {
	HTTPListen              string        `yaml:"http_listen"`
	GRPCListen              string        `yaml:"grpc_listen"`
	LogLevel                string        `yaml:"log_level"`
	LogFormat               string        `yaml:"log_format"`
	GracefulShutdownTimeout time.Duration `yaml:"graceful_shutdown_timeout"`
	GRPCMaxRecvMsgSize      int           `yaml:"grpc_max_recv_msg_size"`
	GRPCMaxSendMsgSize      int           `yaml:"grpc_max_send_msg_size"`
	// SecurityConfig is TLS and authentication (security.go).
	SecurityConfig `yaml:",inline"`
	// GoRuntimeConfig is GOGC and GOMEMLIMIT (goruntime.go).
	GoRuntimeConfig `yaml:",inline"`
}

// RegisterFlags registers the server flags.
func (c *ServerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPListen, "server.http-listen", ":9090", "Address of the HTTP server: Prometheus API, remote write, UI, /metrics.")
	fs.StringVar(&c.GRPCListen, "server.grpc-listen", ":9095", "Address of the gRPC server between roles.")
	fs.StringVar(&c.LogLevel, "server.log-level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.LogFormat, "server.log-format", "logfmt", "Log format: logfmt or json.")
	fs.DurationVar(&c.GracefulShutdownTimeout, "server.graceful-shutdown-timeout", 30*time.Second, "How long shutdown waits for in-flight requests.")
	fs.IntVar(&c.GRPCMaxRecvMsgSize, "server.grpc-max-recv-msg-size", 100<<20, "Largest gRPC message the server accepts, in bytes.")
	fs.IntVar(&c.GRPCMaxSendMsgSize, "server.grpc-max-send-msg-size", 100<<20, "Largest gRPC message the server sends, in bytes.")
	c.SecurityConfig.RegisterFlags(fs)
	c.GoRuntimeConfig.RegisterFlags(fs)
}

// Validate reports the first invalid field.
func (c *ServerConfig) Validate() error {
	if c.HTTPListen == "" {
		return errors.New("http_listen: must not be empty")
	}
	if c.GRPCListen == "" {
		return errors.New("grpc_listen: must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "logfmt", "json":
	default:
		return fmt.Errorf("log_format: %q is not one of logfmt, json", c.LogFormat)
	}
	if c.GracefulShutdownTimeout <= 0 {
		return errors.New("graceful_shutdown_timeout: must be positive")
	}
	if err := c.GoRuntimeConfig.Validate(); err != nil {
		return err
	}
	return c.SecurityConfig.Validate()
}

// IngesterClientConfig is how distributors and queriers reach ingesters.
type IngesterClientConfig struct {
	ingesterclient.Config `yaml:",inline"`
	// Addresses of the ingesters' gRPC servers when the ingester role runs
	// elsewhere. Empty in all-in-one mode, where the local gRPC server is used.
	Addresses stringList `yaml:"addresses"`
	// LocalShortcut has the distributor and querier of a process that runs
	// an ingester call it directly instead of over gRPC on loopback. Off
	// only to compare the two.
	LocalShortcut bool `yaml:"local_shortcut"`
}

// RegisterFlags registers the ingester client flags.
func (c *IngesterClientConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Config.RegisterFlags("ingester.client.", fs)
	fs.Var(&c.Addresses, "ingester.client.addresses", "Comma-separated host:port list of ingester gRPC servers (empty: the local one).")
	fs.BoolVar(&c.LocalShortcut, "ingester.client.local-shortcut", true, "Call this process's own ingester directly, without encoding or gRPC, from its distributor and querier (ring mode only; not with ingester.client.addresses).")
}

// RegisterFlags registers a flag for every field of every section.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Target, "target", RoleAll, "Roles to run: all, or a comma-separated list of "+strings.Join(availableRoles, ", ")+".")
	c.Server.RegisterFlags(fs)
	c.IngesterClient.RegisterFlags(fs)
	c.Storage.RegisterFlags(fs)
	c.Distributor.RegisterFlags(fs)
	c.Querier.RegisterFlags(fs)
	c.QueryFrontend.RegisterFlags(fs)
	c.Memberlist.RegisterFlags(fs)
	c.Ring.RegisterFlags(fs)
	c.Scraper.RegisterFlags(fs)
	c.Notifier.RegisterFlags(fs)
	c.Rules.RegisterFlags(fs)
	c.Ruler.RegisterFlags(fs)
	c.Multitenancy.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	c.RuntimeConfig.RegisterFlags(fs)
}

// Validate reports the first invalid field, named by its YAML path.
func (c *Config) Validate() error {
	if _, err := c.Roles(); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	for _, s := range []struct {
		name string
		v    interface{ Validate() error }
	}{
		{"server", &c.Server},
		{"ingester_client", &c.IngesterClient.Config},
		{"storage", &c.Storage},
		{"distributor", &c.Distributor},
		{"querier", &c.Querier},
		{"query_frontend", &c.QueryFrontend},
		{"memberlist", &c.Memberlist},
		{"ring", &c.Ring},
		{"scraper", &c.Scraper},
		{"ruler", &c.Ruler},
		{"limits", &c.Limits},
		{"runtime_config", &c.RuntimeConfig},
	} {
		if err := s.v.Validate(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	roles, _ := c.Roles()
	if slices.Contains(roles, RoleNotifier) {
		if err := c.validateNotifier(); err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
	}
	if !slices.Contains(roles, RoleIngester) && len(c.IngesterClient.Addresses) == 0 && len(c.Memberlist.Join) == 0 &&
		(slices.Contains(roles, RoleDistributor) || slices.Contains(roles, RoleQuerier) || slices.Contains(roles, RoleRuler)) {
		return errors.New("ingester_client.addresses: required when this process runs a distributor, querier or ruler but no ingester, unless memberlist.join finds the ring")
	}
	return nil
}

// Roles returns the roles to run, expanded and in start order.
func (c *Config) Roles() ([]string, error) {
	want := map[string]bool{}
	for _, r := range strings.Split(c.Target, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == RoleAll:
			for _, a := range availableRoles {
				want[a] = true
			}
		case slices.Contains(availableRoles, r):
			want[r] = true
		case slices.Contains(plannedRoles, r):
			return nil, fmt.Errorf("role %q is not available in this version", r)
		default:
			return nil, fmt.Errorf("unknown role %q (want all or a comma-separated list of %s)", r, strings.Join(availableRoles, ", "))
		}
	}
	var roles []string
	for _, r := range availableRoles {
		if want[r] {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

// File is the configuration file the config came from, "" for the embedded default.
func (c *Config) File() string { return c.file }

// Load builds the configuration from command-line arguments: flag defaults,
// then the file named by -config.file (or the embedded default), then the
// flags given explicitly. It does not validate.
func Load(args []string) (_ *Config, err error) {
	// A first pass over the flags finds the file and the switches; it
	// parses into a throwaway Config, because the flags are parsed again
	// after the file (so they win over it), and parsing twice into one
	// Config would append repeatable flags (memberlist.join,
	// notifier.peer) twice.
	var lf loadFlags
	pre := &Config{}
	defer func() {
		if err != nil && pre.verifyOnly && !errors.Is(err, ErrPrintVersion) {
			err = fmt.Errorf("%w: %w", ErrConfigInvalid, err)
		}
	}()
	pfs := lf.flagSet(pre)
	if err := pfs.Parse(args); err != nil {
		return nil, err
	}
	if lf.printVersion {
		return nil, ErrPrintVersion
	}
	if pfs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", pfs.Args())
	}
	file, expandEnv := lf.file, lf.expandEnv
	// Registering the flags sets the defaults; the file comes next.
	cfg := &Config{}
	fs := new(loadFlags).flagSet(cfg)

	data, name := defaultConfigYAML, "<embedded default config>"
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		name = file
	}
	if expandEnv {
		data = expandEnvRefs(data)
	}
	if err := yaml.UnmarshalStrict(data, cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", name, err)
	}
	// Flags given on the command line win over the file.
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if cfg.RawScrape != nil {
		scrape, err := loadScrapeSection(data, cfg.RawScrape)
		if err != nil {
			return nil, fmt.Errorf("config file %s: scrape: %w", name, err)
		}
		if file != "" {
			scrape.SetDirectory(filepath.Dir(file))
		}
		cfg.Scrape = scrape
	}
	cfg.file = file
	cfg.args = slices.Clone(args)
	cfg.flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { cfg.flags[f.Name] = f.Value.String() })
	return cfg, nil
}

// loadFlags are the flags of Load itself, beside the Config's.
type loadFlags struct {
	file                    string
	expandEnv, printVersion bool
}

// flagSet returns a flag set with Load's flags into lf and cfg's flags,
// errors returned rather than printed with an exit.
func (lf *loadFlags) flagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("pharos", flag.ContinueOnError)
	fs.BoolVar(&cfg.verifyOnly, "config.verify", false, "Check the configuration and the files it names (alertmanager.yml, rule files, TLS certificates and keys, the gossip key) as a start would, print OK or the error, and exit 0 or 1.")
	fs.StringVar(&lf.file, "config.file", "", "Pharos YAML configuration file. Without it, an embedded all-in-one configuration that scrapes itself is used.")
	fs.BoolVar(&lf.expandEnv, "config.expand-env", false, "Expand ${VAR} and ${VAR:default} references to environment variables in the configuration file.")
	fs.BoolVar(&lf.printVersion, "version", false, "Print the version and exit.")
	cfg.RegisterFlags(fs)
	return fs
}

var (
	scrapeKey = regexp.MustCompile(`(?m)^scrape:[ \t]*(#.*)?$`)
	lineRef   = regexp.MustCompile(`line (\d+)`)
)

// loadScrapeSection loads the scrape section with Prometheus's config.Load,
// which validates it and marks it loaded for the scrape manager. The section's
// own text is cut out of the file so that errors name the file's line numbers;
// a flow-style section is re-marshalled instead.
func loadScrapeSection(data []byte, raw yaml.MapSlice) (*promconfig.Config, error) {
	text, firstLine := "", 0
	if loc := scrapeKey.FindIndex(data); loc != nil {
		firstLine = bytes.Count(data[:loc[1]], []byte("\n")) + 1
		var b strings.Builder
		for _, l := range strings.SplitAfter(string(data[loc[1]:]), "\n")[1:] {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") && l[0] != ' ' && l[0] != '\t' {
				break // the next top-level key
			}
			b.WriteString(l)
		}
		text = b.String()
	} else {
		out, err := yaml.Marshal(raw)
		if err != nil {
			return nil, err
		}
		text = string(out)
	}
	cfg, err := promconfig.Load(text, promslog.NewNopLogger())
	if err != nil && firstLine > 0 {
		msg := lineRef.ReplaceAllStringFunc(err.Error(), func(m string) string {
			n, _ := strconv.Atoi(m[len("line "):])
			return fmt.Sprintf("line %d", n+firstLine)
		})
		return nil, errors.New(msg)
	}
	return cfg, err
}

// ErrPrintVersion is returned by Load for -version.
var ErrPrintVersion = errors.New("print version")

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}`)

// expandEnvRefs replaces ${VAR} and ${VAR:default}. Only braced names that
// cannot be regex group references are touched, so relabel replacements such
// as $1 and ${1} survive, which a plain os.ExpandEnv would destroy.
func expandEnvRefs(data []byte) []byte {
	return envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(sub[1])); ok {
			return []byte(v)
		}
		return sub[2]
	})
}

// stringList is a flag.Value for comma-separated lists that is also a YAML list.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = nil
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
