package ruler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/pharos-tsdb/pharos/internal/dnsaddr"
)

// raftNode is the raft instance with the stores and transport it owns.
type raftNode struct {
	raft      *raft.Raft
	transport raft.Transport
	closer    io.Closer // the transport's listener
	store     *raftboltdb.BoltStore
	id        raft.ServerID
	addr      raft.ServerAddress
}

// openRaft opens (or creates) the raft stores under dir and starts raft.
// stream, when set, replaces the TCP transport's stream layer (tests use it
// to cut a replica off).
func openRaft(cfg Config, dir string, stream raft.StreamLayer, f raft.FSM, logger *slog.Logger) (_ *raftNode, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	hl := newHCLogger(logger)
	n := &raftNode{}
	defer func() {
		if err != nil {
			_ = n.closeStores()
		}
	}()
	switch {
	case stream == nil && len(cfg.Peers) == 0:
		// A single ruler talks to no one: an in-memory transport, so an
		// all-in-one process opens no raft port.
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(singleID))
		n.id, n.addr, n.transport = singleID, addr, tr
	default:
		if stream == nil {
			tcp, err := newTCPStream(cfg.RaftBind, cfg.RaftAdvertise, false)
			if err != nil {
				return nil, err
			}
			if stream, err = withTLS(tcp, cfg.RaftTLS); err != nil {
				tcp.Close()
				return nil, err
			}
		}
		// A server's ID is its advertised address: stable for a
		// StatefulSet pod's DNS name, and what a peer list names.
		advertise := stream.Addr().String()
		n.id, n.addr, n.closer = raft.ServerID(advertise), raft.ServerAddress(advertise), stream
		n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  stream,
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  hl.Named("transport"),
		})
	}
	n.store, err = raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("open raft log store: %w", err)
	}
	logs, err := raft.NewLogCache(512, n.store)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raft snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = n.id
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = 1024
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, f, logs, n.store, snaps, n.transport)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if err := n.checkMembership(dir); err != nil {
		_ = n.raft.Shutdown().Error()
		return nil, err
	}
	return n, nil
}

// singleID is the raft ID of a ruler without peers.
const singleID = raft.ServerID("single")

// checkMembership refuses existing raft state that does not list this
// replica, as after switching between a single ruler and a peer list: raft
// would wait forever for an election it cannot take part in.
func (n *raftNode) checkMembership(dir string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	servers := f.Configuration().Servers
	if len(servers) == 0 {
		return nil // not bootstrapped yet
	}
	for _, s := range servers {
		if s.ID == n.id {
			return nil
		}
	}
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = string(s.ID)
	}
	return fmt.Errorf("the raft state in %s belongs to a cluster of %v, which does not include this ruler (%s); "+
		"restore ruler.peers / ruler.raft-advertise, or remove the directory to start afresh (rule groups set through the API and alert state are then lost)",
		dir, ids, n.id)
}

// bootstrap makes a fresh node part of a cluster. With a static peer list
// every replica bootstraps the same configuration, which raft allows. With
// a DNS name, only the first replica (lowest StatefulSet ordinal by reverse
// DNS, else lowest address) bootstraps, with itself alone, and as leader
// adds the others (reconcilePeers): replicas starting at different moments
// may resolve different sets.
func (n *raftNode) bootstrap(ctx context.Context, peers []string, logger *slog.Logger) error {
	if n.raft.LastIndex() > 0 {
		return nil // existing state: raft resumes the cluster it belonged to
	}
	var servers []raft.Server
	switch {
	case len(peers) == 0 || n.id == singleID:
		servers = []raft.Server{{ID: n.id, Address: n.addr}}
	case !hasDNSPeer(peers):
		if !slices.Contains(peers, string(n.addr)) {
			return fmt.Errorf("ruler.peers %v do not include this ruler's raft address %q; set ruler.raft-advertise to the form used in the list", peers, n.addr)
		}
		for _, p := range slices.Compact(slices.Sorted(slices.Values(peers))) {
			servers = append(servers, raft.Server{ID: raft.ServerID(p), Address: raft.ServerAddress(p)})
		}
	default:
		for {
			addrs, err := resolvePeers(ctx, peers)
			if err != nil {
				logger.Warn("resolving ruler peers failed; retrying", "err", err)
			} else if slices.Contains(addrs, string(n.addr)) {
				if addrs[0] != string(n.addr) {
					return nil // the lowest address bootstraps; we wait to be added
				}
				servers = []raft.Server{{ID: n.id, Address: n.addr}}
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// reconcilePeers adds resolved peers that are not yet voters. It never
// removes one: a replica missing from DNS for a moment is not gone.
func (n *raftNode) reconcilePeers(ctx context.Context, peers []string) error {
	addrs, err := resolvePeers(ctx, peers)
	if err != nil {
		return err
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	known := map[raft.ServerAddress]bool{}
	for _, s := range f.Configuration().Servers {
		known[s.Address] = true
	}
	for _, a := range addrs {
		if known[raft.ServerAddress(a)] {
			continue
		}
		if err := n.raft.AddVoter(raft.ServerID(a), raft.ServerAddress(a), 0, 10*time.Second).Error(); err != nil {
			return fmt.Errorf("add ruler %s: %w", a, err)
		}
	}
	return nil
}

func (n *raftNode) shutdown() error {
	err := n.raft.Shutdown().Error()
	if c, ok := n.transport.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return errors.Join(err, n.closeStores())
}

func (n *raftNode) closeStores() error {
	var errs []error
	if n.raft == nil && n.closer != nil {
		errs = append(errs, n.closer.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

func hasDNSPeer(peers []string) bool {
	return slices.ContainsFunc(peers, dnsaddr.Dynamic)
}

// resolvePeers expands dns+ entries and returns every address, sorted.
// Raft must know every peer: any that does not resolve is an error.
func resolvePeers(ctx context.Context, peers []string) ([]string, error) {
	out, err := dnsaddr.Resolve(ctx, dnsaddr.Net{}, peers)
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	// A StatefulSet's pods resolve back to <name>-<ordinal>.<service>:
	// order by ordinal where the names say it, so pod 0 bootstraps.
	ord := make(map[string]int, len(out))
	for _, a := range out {
		ord[a] = ordinalOf(ctx, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if oi, oj := ord[out[i]], ord[out[j]]; oi != oj {
			return oi < oj
		}
		return addrLess(out[i], out[j])
	})
	return slices.Compact(out), nil
}

// ordinalOf is the StatefulSet ordinal of the pod behind addr, from its
// reverse DNS name, or a large number when there is none.
func ordinalOf(ctx context.Context, addr string) int {
	const none = 1 << 30
	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return none
	}
	names, err := net.DefaultResolver.LookupAddr(ctx, host)
	if err != nil || len(names) == 0 {
		return none
	}
	return ordinalOfName(names[0])
}

// ordinalOfName parses "pharos-ruler-2.pharos-ruler.monitoring.svc." as 2.
func ordinalOfName(name string) int {
	first, _, _ := strings.Cut(name, ".")
	i := strings.LastIndexByte(first, '-')
	if i < 0 {
		return 1 << 30
	}
	n, err := strconv.Atoi(first[i+1:])
	if err != nil || n < 0 {
		return 1 << 30
	}
	return n
}

// addrLess orders addresses numerically where they are IPs, so that
// 10.0.0.9 comes before 10.0.0.10.
func addrLess(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	if ia != nil && ib != nil && !ia.Equal(ib) {
		return slices.Compare(ia.To16(), ib.To16()) < 0
	}
	if ha != hb {
		return ha < hb
	}
	x, _ := strconv.Atoi(pa)
	y, _ := strconv.Atoi(pb)
	return x < y
}

// tcpStream is raft's TCP stream layer with an advertise address we
// choose (raft's own refuses a wildcard bind without one).
type tcpStream struct {
	net.Listener
	advertise net.Addr

	mu       sync.Mutex
	accepted map[net.Conn]struct{}
}

// Accept tracks accepted connections so that Close can end them: raft's
// transport keeps serving them otherwise.
func (t *tcpStream) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.accepted[c] = struct{}{}
	t.mu.Unlock()
	return &trackedConn{Conn: c, s: t}, nil
}

func (t *tcpStream) Close() error {
	err := t.Listener.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.accepted {
		c.Close()
	}
	clear(t.accepted)
	return err
}

type trackedConn struct {
	net.Conn
	s *tcpStream
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.accepted, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

func newTCPStream(bind, advertise string, single bool) (*tcpStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen: %w", err)
	}
	if advertise == "" {
		if advertise, err = advertiseFor(ln.Addr().String(), single); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return &tcpStream{Listener: ln, advertise: stringAddr(advertise), accepted: map[net.Conn]struct{}{}}, nil
}

// stringAddr is an advertised address as given: a host name stays a name.
type stringAddr string

func (stringAddr) Network() string  { return "tcp" }
func (a stringAddr) String() string { return string(a) }

func (t *tcpStream) Addr() net.Addr { return t.advertise }

func (t *tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// newHCLogger routes raft's hclog output into slog: hclog writes JSON
// lines, hclogWriter turns each into one slog record.
func newHCLogger(logger *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      hclog.Info,
		JSONFormat: true,
		Output:     hclogWriter{logger: logger},
	})
}

type hclogWriter struct{ logger *slog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		w.logger.Info(strings.TrimSpace(string(p)))
		return len(p), nil
	}
	msg, _ := m["@message"].(string)
	lvl := slog.LevelInfo
	switch m["@level"] {
	case "trace", "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	args := make([]any, 0, 2*len(m))
	if mod, ok := m["@module"].(string); ok {
		args = append(args, "module", mod)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, k, m[k])
	}
	w.logger.Log(context.Background(), lvl, msg, args...)
	return len(p), nil
}

// advertiseFor derives the raft address to advertise from the bind
// address: its own host, or with a wildcard host the first private IPv4
// address (loopback for a single ruler).
func advertiseFor(bind string, single bool) (string, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("raft_bind: %w", err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bind, nil
	}
	if !single {
		ifaces, _ := net.InterfaceAddrs()
		for _, ia := range ifaces {
			if ipn, ok := ia.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && ipn.IP.IsGlobalUnicast() {
				return net.JoinHostPort(ipn.IP.String(), port), nil
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}
