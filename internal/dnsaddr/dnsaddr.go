package dnsaddr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

type kind int

const (
	static kind = iota
	dnsA        // dns+name:port: A/AAAA records, fixed port
	dnsSRV      // dnssrv+name: SRV records give hosts and ports
)

type addr struct {
	kind kind
	host string
	port string
}

// Validate reports whether s is an address Resolve understands.
func Validate(s string) error {
	_, err := parse(s)
	return err
}

// Dynamic says whether s names its addresses through DNS, so that they may
// change while the process runs.
func Dynamic(s string) bool {
	return strings.HasPrefix(s, "dns+") || strings.HasPrefix(s, "dnssrv+")
}

func parse(s string) (addr, error) {
	switch {
	case strings.HasPrefix(s, "dnssrv+"):
		name := strings.TrimPrefix(s, "dnssrv+")
		if name == "" {
			return addr{}, fmt.Errorf("%q: empty name", s)
		}
		return addr{kind: dnsSRV, host: name}, nil
	case strings.HasPrefix(s, "dns+"):
		host, port, err := net.SplitHostPort(strings.TrimPrefix(s, "dns+"))
		if err != nil {
			return addr{}, fmt.Errorf("%q: %w", s, err)
		}
		return addr{kind: dnsA, host: host, port: port}, nil
	case strings.Contains(s, "+"):
		return addr{}, fmt.Errorf("%q: unknown scheme (want dns+ or dnssrv+)", s)
	default:
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return addr{}, fmt.Errorf("%q: %w", s, err)
		}
		return addr{kind: static, host: host, port: port}, nil
	}
}

// Resolver is the part of *net.Resolver that Resolve uses.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Resolve expands addrs into host:port pairs, in order. An address that
// does not parse or resolve is reported in the error but does not stop the
// others (in a rollout some peers are expected to be missing): callers that
// need every address treat any error as fatal.
func Resolve(ctx context.Context, r Resolver, addrs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, a := range addrs {
		j, err := parse(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch j.kind {
		case static:
			out = append(out, net.JoinHostPort(j.host, j.port))
		case dnsA:
			hosts, err := r.LookupHost(ctx, j.host)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve %s: %w", j.host, err))
				continue
			}
			for _, h := range hosts {
				out = append(out, net.JoinHostPort(h, j.port))
			}
		case dnsSRV:
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

// Net is net.DefaultResolver as a Resolver, read at call time.
type Net struct{}

func (Net) LookupHost(ctx context.Context, host string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, host)
}

func (Net) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return net.DefaultResolver.LookupSRV(ctx, service, proto, name)
}
