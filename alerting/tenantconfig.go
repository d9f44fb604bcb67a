package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	tmpltext "text/template"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"go.yaml.in/yaml/v2"
)

// tenantConfig is one tenant's configuration as the config API takes it
// (Mimir's format: an alertmanager.yml as a string plus template files by
// name), with the time it was stored. A deletion is kept as a tombstone
// so that gossip cannot bring the deleted configuration back.
//
// An entry without a configuration that is not a tombstone is a marker:
// the tenant runs the fallback somewhere. Markers make every replica start
// the tenant's Alertmanager, so its silences and notification log have a
// gossip state to merge into on every replica from the start.
type tenantConfig struct {
	AlertmanagerConfig string            `json:"alertmanager_config,omitempty"`
	TemplateFiles      map[string]string `json:"template_files,omitempty"`
	UpdatedAt          time.Time         `json:"updated_at"`
	Deleted            bool              `json:"deleted,omitempty"`
}

// marker reports whether e only announces the tenant.
func (e tenantConfig) marker() bool { return e.AlertmanagerConfig == "" && !e.Deleted }

// newer reports whether a wins over b: anything over a marker (a marker
// is written without looking at what other replicas hold, so it must not
// replace a configuration it never saw), else the later updated_at, and on
// a tie (two replicas, one nanosecond) an arbitrary but deterministic
// order, so every replica keeps the same one.
func (a tenantConfig) newer(b tenantConfig) bool {
	if a.marker() != b.marker() {
		return b.marker()
	}
	if !a.UpdatedAt.Equal(b.UpdatedAt) {
		return a.UpdatedAt.After(b.UpdatedAt)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Compare(ja, jb) > 0
}

// tenantConfigs is the replicated store of tenant configurations: the
// gossip state "cfg" of the notifier's cluster.Peer (a last-writer-wins
// map with tombstones) and a file in the data dir, rewritten on every
// change, so a restart of every replica keeps each tenant's configuration.
//
// Merge is called by the peer with its state lock held, so it only updates
// the map and signals changed; the Notifier applies configurations from
// its own goroutine.
type tenantConfigs struct {
	file      string
	retention time.Duration
	logger    *slog.Logger

	mu        sync.Mutex
	entries   map[string]tenantConfig
	broadcast func([]byte)
	changed   chan struct{} // capacity 1: a pending signal covers all changes
}

// tenantConfigsFile is the store's file name in the notifier data dir.
const tenantConfigsFile = "tenant-configs.json"

func openTenantConfigs(file string, retention time.Duration, logger *slog.Logger) (*tenantConfigs, error) {
	s := &tenantConfigs{
		file:      file,
		retention: retention,
		logger:    logger,
		entries:   map[string]tenantConfig{},
		broadcast: func([]byte) {},
		changed:   make(chan struct{}, 1),
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant configurations: %w", err)
	}
	if err := json.Unmarshal(b, &s.entries); err != nil {
		return nil, fmt.Errorf("read tenant configurations %s: %w", file, err)
	}
	return s, nil
}

// MarshalBinary implements cluster.State: the full state for push/pull.
func (s *tenantConfigs) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.entries)
}

// Merge implements cluster.State for full states and broadcasts alike.
func (s *tenantConfigs) Merge(b []byte) error {
	var in map[string]tenantConfig
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("decode tenant configurations: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for id, e := range in {
		if cur, ok := s.entries[id]; !ok || e.newer(cur) {
			s.entries[id] = e
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := s.persistLocked(); err != nil {
		s.logger.Error("persist tenant configurations", "err", err)
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return nil
}

// put stores e for tenant id as its newest version, persists and
// broadcasts it, and returns it as stored (updated_at may have moved past
// a newer clock seen from another replica).
func (s *tenantConfigs) put(id string, e tenantConfig) (tenantConfig, error) {
	s.mu.Lock()
	if cur, ok := s.entries[id]; ok && !e.UpdatedAt.After(cur.UpdatedAt) {
		if e.marker() {
			s.mu.Unlock()
			return cur, nil
		}
		e.UpdatedAt = cur.UpdatedAt.Add(time.Nanosecond)
	}
	s.entries[id] = e
	err := s.persistLocked()
	bcast := s.broadcast
	s.mu.Unlock()
	if err != nil {
		return e, err
	}
	b, err := json.Marshal(map[string]tenantConfig{id: e})
	if err != nil {
		return e, fmt.Errorf("encode tenant configuration: %w", err)
	}
	bcast(b)
	return e, nil
}

// get returns tenant id's configuration; false when it has none (never
// had, deleted, or only a marker).
func (s *tenantConfigs) get(id string) (tenantConfig, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	return e, ok && e.AlertmanagerConfig != "" && !e.Deleted
}

// announce adds a marker for tenant id unless it has an entry already.
func (s *tenantConfigs) announce(id string) error {
	s.mu.Lock()
	if _, ok := s.entries[id]; ok {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	_, err := s.put(id, tenantConfig{UpdatedAt: time.Now()})
	return err
}

// entry returns tenant id's entry, tombstones included.
func (s *tenantConfigs) entry(id string) (tenantConfig, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	return e, ok
}

// tenants returns the tenants with an entry, tombstones included.
func (s *tenantConfigs) tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.entries))
}

// persistLocked turns tombstones older than the retention (by then every
// replica has seen them) into markers, which take less room and lose to
// anything, and rewrites the file atomically.
func (s *tenantConfigs) persistLocked() error {
	for id, e := range s.entries {
		if e.Deleted && time.Since(e.UpdatedAt) > s.retention {
			s.entries[id] = tenantConfig{UpdatedAt: e.UpdatedAt}
		}
	}
	b, err := json.Marshal(s.entries)
	if err != nil {
		return fmt.Errorf("encode tenant configurations: %w", err)
	}
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write tenant configurations: %w", err)
	}
	if err := os.Rename(tmp, s.file); err != nil {
		return fmt.Errorf("write tenant configurations: %w", err)
	}
	return nil
}

// tenantConfigFile is the name of a tenant's alertmanager.yml in its
// configuration directory, beside its template files.
const tenantConfigFile = "alertmanager.yml"

// writeConfigDir writes e into dir (replacing what was there) and loads
// it. Relative template globs resolve inside dir, as upstream resolves them
// against the directory of alertmanager.yml.
func writeConfigDir(dir string, e tenantConfig) (*config.Config, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear configuration directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create configuration directory: %w", err)
	}
	for name, content := range e.TemplateFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("write template %s: %w", name, err)
		}
	}
	file := filepath.Join(dir, tenantConfigFile)
	if err := os.WriteFile(file, []byte(e.AlertmanagerConfig), 0o600); err != nil {
		return nil, fmt.Errorf("write configuration: %w", err)
	}
	c, err := parseConfigFile(file, func(globs []string) error {
		for i, t := range globs {
			rel, err := filepath.Rel(dir, t)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return fmt.Errorf("templates[%d]: %q is not one of the tenant's template files; name template_files keys", i, filepath.Base(t))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alertmanager_config: %w", err)
	}
	return c, nil
}

// validateTenantConfig refuses what the config API must not store: an
// empty or invalid configuration (errors name the YAML path, see
// validate.go), template files that are not plain names or do not parse,
// and any setting that reads a file of the notifier's host (`*_file`):
// a tenant may only use what it sends.
func validateTenantConfig(e tenantConfig) error {
	if strings.TrimSpace(e.AlertmanagerConfig) == "" {
		return errors.New("alertmanager_config: must not be empty")
	}
	for _, name := range slices.Sorted(maps.Keys(e.TemplateFiles)) {
		if name == "" || name == "." || name == ".." || name != filepath.Base(name) || strings.ContainsAny(name, `/\`) {
			return fmt.Errorf("template_files: %q is not a plain file name", name)
		}
		if name == tenantConfigFile {
			return fmt.Errorf("template_files: the name %q is reserved", name)
		}
		if _, err := tmpltext.New(name).Funcs(tmpltext.FuncMap(template.DefaultFuncs)).Parse(e.TemplateFiles[name]); err != nil {
			return fmt.Errorf("template_files.%s: %w", name, err)
		}
	}
	var doc yaml.MapSlice
	if err := yaml.Unmarshal([]byte(e.AlertmanagerConfig), &doc); err == nil {
		if p := findFileSetting(doc, ""); p != "" {
			return fmt.Errorf("alertmanager_config: %s: settings that read files of the notifier's host are not allowed in a tenant's configuration", p)
		}
	}
	dir, err := os.MkdirTemp("", "pharos-tenant-config-")
	if err != nil {
		return fmt.Errorf("validate configuration: %w", err)
	}
	defer os.RemoveAll(dir)
	_, err = writeConfigDir(dir, e)
	return err
}

// findFileSetting returns the YAML path of the first non-empty key named
// *_file or *_files under v, "" if there is none.
func findFileSetting(v any, path string) string {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := v.(type) {
	case yaml.MapSlice:
		for _, it := range v {
			k := fmt.Sprint(it.Key)
			if (strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_files")) && it.Value != nil && fmt.Sprint(it.Value) != "" && fmt.Sprint(it.Value) != "[]" {
				return join(k)
			}
			if p := findFileSetting(it.Value, join(k)); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := findFileSetting(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
