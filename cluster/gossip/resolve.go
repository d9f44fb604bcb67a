package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

type joinKind int

const (
	joinStatic joinKind = iota
	joinDNS             // dns+name:port: A/AAAA records, fixed port
	joinSRV             // dnssrv+name: SRV records give hosts and ports
)

type joinAddr struct {
	kind joinKind
	host string
	port string
}

func parseJoin(s string) (joinAddr, error) {
	switch {
	case strings.HasPrefix(s, "dnssrv+"):
		name := strings.TrimPrefix(s, "dnssrv+")
		if name == "" {
			return joinAddr{}, fmt.Errorf("empty name in %q", s)
		}
		return joinAddr{kind: joinSRV, host: name}, nil
	case strings.HasPrefix(s, "dns+"):
		host, port, err := net.SplitHostPort(strings.TrimPrefix(s, "dns+"))
		if err != nil {
			return joinAddr{}, fmt.Errorf("parse %q: %w", s, err)
		}
		return joinAddr{kind: joinDNS, host: host, port: port}, nil
	case strings.Contains(s, "+"):
		return joinAddr{}, fmt.Errorf("unknown scheme in %q (want dns+ or dnssrv+)", s)
	default:
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return joinAddr{}, fmt.Errorf("parse %q: %w", s, err)
		}
		return joinAddr{kind: joinStatic, host: host, port: port}, nil
	}
}

// resolver is the part of *net.Resolver used to expand join addresses.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// resolveJoin expands the configured join addresses into host:port pairs.
// Names that fail to resolve are reported but do not stop the others: in a
// rollout some seeds are expected to be missing.
func resolveJoin(ctx context.Context, r resolver, addrs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, a := range addrs {
		j, err := parseJoin(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch j.kind {
		case joinStatic:
			out = append(out, net.JoinHostPort(j.host, j.port))
		case joinDNS:
			hosts, err := r.LookupHost(ctx, j.host)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve %s: %w", j.host, err))
				continue
			}
			for _, h := range hosts {
				out = append(out, net.JoinHostPort(h, j.port))
			}
		case joinSRV:
			// The name is queried as is (e.g. _gossip._tcp.svc.ns), as
			// Kubernetes headless services publish it.
			_, srvs, err := r.LookupSRV(ctx, "", "", j.host)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve srv %s: %w", j.host, err))
				continue
			}
			for _, s := range srvs {
				out = append(out, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
			}
		}
	}
	return out, errors.Join(errs...)
}

// netResolver adapts net.DefaultResolver, read at call time.
type netResolver struct{}

func (netResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

func (netResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return net.DefaultResolver.LookupSRV(ctx, service, proto, name)
}
