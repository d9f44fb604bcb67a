package dnsaddr

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

type fakeResolver struct {
	hosts map[string][]string
	srv   map[string][]*net.SRV
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if h, ok := f.hosts[host]; ok {
		return h, nil
	}
	return nil, errors.New("no such host")
}

func (f fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	if s, ok := f.srv[name]; ok {
		return name, s, nil
	}
	return "", nil, errors.New("no such srv")
}

func TestResolve(t *testing.T) {
	r := fakeResolver{
		hosts: map[string][]string{"gossip.svc": {"10.0.0.1", "10.0.0.2"}},
		srv:   map[string][]*net.SRV{"_g._tcp.gossip.svc": {{Target: "p-0.gossip.svc.", Port: 7946}, {Target: "p-1.gossip.svc.", Port: 7947}}},
	}
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{"static", []string{"h:1", "[::1]:2"}, []string{"h:1", "[::1]:2"}, false},
		{"dns", []string{"dns+gossip.svc:7946"}, []string{"10.0.0.1:7946", "10.0.0.2:7946"}, false},
		{"srv", []string{"dnssrv+_g._tcp.gossip.svc"}, []string{"p-0.gossip.svc:7946", "p-1.gossip.svc:7947"}, false},
		{"failure keeps the rest", []string{"dns+missing:1", "h:1"}, []string{"h:1"}, true},
		{"bad address keeps the rest", []string{"h", "h:1"}, []string{"h:1"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(context.Background(), r, tc.in)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.wantErr, err != nil, "err: %v", err)
		})
	}
}

func TestValidate(t *testing.T) {
	for _, ok := range []string{"h:1", "[::1]:2", "dns+svc:1", "dnssrv+_g._tcp.svc"} {
		require.NoError(t, Validate(ok), ok)
	}
	for _, bad := range []string{"h", "dns+svc", "dnssrv+", "srv+h:1"} {
		require.Error(t, Validate(bad), bad)
	}
	require.True(t, Dynamic("dns+svc:1"))
	require.True(t, Dynamic("dnssrv+svc"))
	require.False(t, Dynamic("h:1"))
}
