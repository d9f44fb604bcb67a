package alerting

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// netsim puts a relay in front of each replica's gossip port so a test
// can cut a replica off the cluster while the process keeps running, as a
// network partition does. Each replica binds a fixed port and advertises
// its relay's address instead, so every peer reaches it through the relay
// (memberlist answers pings at the advertised source address, so replies
// go through the relays too).
//
// Isolation drops every UDP packet to the isolated replica and every UDP
// packet it sends (a memberlist node sends UDP from its bind port, which
// names the sender). TCP streams (push-pull sync, join, fallback probes)
// come from ephemeral ports and cannot be attributed, so while anything is
// isolated all TCP through every relay is refused and open streams are
// cut. The healthy replicas then keep gossiping over UDP, which carries
// probes and the nflog/silence broadcasts, and only lose their periodic
// full sync until the partition heals.
type netsim struct {
	t        *testing.T
	mu       sync.Mutex
	isolated map[string]bool   // replica names
	byBind   map[string]string // replica gossip bind address -> name
	relays   []*relay
}

type relay struct {
	sim          *netsim
	name, target string
	udp          *net.UDPConn
	tcp          net.Listener
	targetUDP    *net.UDPAddr
	mu           sync.Mutex
	conns        map[net.Conn]struct{}
	wg           sync.WaitGroup
}

func newNetsim(t *testing.T) *netsim {
	s := &netsim{t: t, isolated: map[string]bool{}, byBind: map[string]string{}}
	t.Cleanup(s.close)
	return s
}

// add reserves a gossip port for replica name and starts its relay. It
// returns the address the replica binds and the one it advertises.
func (s *netsim) add(name string) (bind, advertise string) {
	t := s.t
	t.Helper()
	// The replica's own port: reserved here, released for it to bind.
	tcp, udp := listenBoth(t)
	bind = tcp.Addr().String()
	tcp.Close()
	udp.Close()

	rtcp, rudp := listenBoth(t)
	targetUDP, err := net.ResolveUDPAddr("udp", bind)
	require.NoError(t, err)
	r := &relay{sim: s, name: name, target: bind, udp: rudp, tcp: rtcp, targetUDP: targetUDP, conns: map[net.Conn]struct{}{}}
	s.mu.Lock()
	s.byBind[bind] = name
	s.relays = append(s.relays, r)
	s.mu.Unlock()
	r.wg.Add(2)
	go r.serveUDP()
	go r.serveTCP()
	return bind, rtcp.Addr().String()
}

// listenBoth opens TCP and UDP listeners on one free loopback port.
func listenBoth(t *testing.T) (net.Listener, *net.UDPConn) {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			return ln, udp
		}
		ln.Close()
	}
	t.Fatal("no port free for both TCP and UDP")
	return nil, nil
}

// isolate cuts replica name off the others until heal.
func (s *netsim) isolate(name string) {
	s.mu.Lock()
	s.isolated[name] = true
	relays := s.relays
	s.mu.Unlock()
	for _, r := range relays {
		r.cutStreams()
	}
}

// heal ends every isolation.
func (s *netsim) heal() {
	s.mu.Lock()
	clear(s.isolated)
	s.mu.Unlock()
}

// udpAllowed reports whether a packet from src may reach replica to.
func (s *netsim) udpAllowed(src, to string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.isolated[to] && !s.isolated[s.byBind[src]]
}

func (s *netsim) anyIsolated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.isolated) > 0
}

func (s *netsim) close() {
	s.mu.Lock()
	relays := s.relays
	s.relays = nil
	s.mu.Unlock()
	for _, r := range relays {
		r.udp.Close()
		r.tcp.Close()
		r.cutStreams()
		r.wg.Wait()
	}
}

func (r *relay) serveUDP() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, src, err := r.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if !r.sim.udpAllowed(src.String(), r.name) {
			continue
		}
		// A dead target (a crashed replica) just swallows the packet.
		_, _ = r.udp.WriteToUDP(buf[:n], r.targetUDP)
	}
}

func (r *relay) serveTCP() {
	defer r.wg.Done()
	for {
		c, err := r.tcp.Accept()
		if err != nil {
			return
		}
		if r.sim.anyIsolated() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

// pipe copies one direction and closes both ends when it ends, so the
// other direction ends too.
func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	// Any error just ends the stream, as a reset would.
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

func (r *relay) cutStreams() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
}
