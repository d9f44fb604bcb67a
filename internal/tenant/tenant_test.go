package tenant

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"a", "team-a", "Team_1.prod", "x!*'()", strings.Repeat("a", MaxLength)} {
		require.NoError(t, Validate(ok), ok)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "é", strings.Repeat("a", MaxLength+1), "a|b"} {
		require.Error(t, Validate(bad), bad)
	}
}

func TestMiddleware(t *testing.T) {
	var got string
	h := func(res Resolver) http.Handler {
		return res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ = FromContext(r.Context())
		}))
	}
	do := func(res Resolver, hdr ...string) *httptest.ResponseRecorder {
		got = ""
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
		for _, v := range hdr {
			r.Header.Add(HeaderName, v)
		}
		w := httptest.NewRecorder()
		h(res).ServeHTTP(w, r)
		return w
	}

	require.Equal(t, http.StatusOK, do(Resolver{}).Code)
	require.Equal(t, DefaultTenant, got)
	require.Equal(t, http.StatusOK, do(Resolver{}, "team-a").Code)
	require.Equal(t, DefaultTenant, got, "the header is ignored with multi-tenancy off")

	on := Resolver{Enabled: true}
	require.Equal(t, http.StatusOK, do(on, "team-a").Code)
	require.Equal(t, "team-a", got)
	w := do(on)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Contains(t, w.Body.String(), "X-Scope-OrgID")
	require.Empty(t, got)
	require.Equal(t, http.StatusUnauthorized, do(on, "a/b").Code)
	require.Equal(t, http.StatusUnauthorized, do(on, "a", "b").Code)
}

func TestGRPCPropagation(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	seen := make(chan string, 1)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, err := FromIncomingContext(ctx)
		if err != nil {
			return nil, err
		}
		seen <- id
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(UnaryClientInterceptor), grpc.WithStreamInterceptor(StreamClientInterceptor))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := healthpb.NewHealthClient(conn)

	_, err = c.Check(With(context.Background(), "team-b"), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, "team-b", <-seen)

	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "a call without a tenant must not leave the process")
}

func TestInjectHeader(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	require.ErrorIs(t, InjectHeader(context.Background(), r), ErrNoTenant)
	require.NoError(t, InjectHeader(With(context.Background(), "t1"), r))
	require.Equal(t, "t1", r.Header.Get(HeaderName))
}
