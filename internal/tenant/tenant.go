package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	// HeaderName is the HTTP header that names the tenant of a request.
	HeaderName = "X-Scope-OrgID"
	// metadataKey carries the tenant in gRPC metadata (keys are lower case).
	metadataKey = "x-scope-orgid"
	// DefaultTenant owns everything while multi-tenancy is disabled; the
	// same name Mimir uses, so data written then stays readable as that
	// tenant once multi-tenancy is turned on.
	DefaultTenant = "anonymous"
	// Label is the reserved series label that holds the tenant in storage.
	// Clients cannot set it: the ingester overwrites it and strips it from
	// everything it answers.
	Label = "__tenant__"
	// MaxLength bounds a tenant ID; it becomes a label value, a path
	// element and a metric label.
	MaxLength = 150
)

// ErrNoTenant is returned when a request carries no tenant where one is
// required.
var ErrNoTenant = errors.New("no tenant: the request carries no " + HeaderName + " header")

type ctxKey struct{}

// With returns a copy of ctx that belongs to tenant id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant of ctx, or ErrNoTenant.
func FromContext(ctx context.Context) (string, error) {
	id, ok := ctx.Value(ctxKey{}).(string)
	if !ok || id == "" {
		return "", ErrNoTenant
	}
	return id, nil
}

// Validate reports whether id is usable as a tenant ID. The rules are
// Mimir's, so IDs valid there are valid here: 1 to 150 characters from
// [a-zA-Z0-9!-_.*'()], and not "." or "..".
func Validate(id string) error {
	switch {
	case id == "":
		return ErrNoTenant
	case len(id) > MaxLength:
		return fmt.Errorf("tenant ID is %d characters long, the maximum is %d", len(id), MaxLength)
	case id == "." || id == "..":
		return fmt.Errorf("tenant ID %q is not allowed", id)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '!', r == '-', r == '_', r == '.', r == '*', r == '\'', r == '(', r == ')':
		default:
			return fmt.Errorf("tenant ID %q contains the character %q; allowed are letters, digits and !-_.*'()", id, r)
		}
	}
	return nil
}

// Resolver decides the tenant of incoming HTTP requests.
type Resolver struct {
	// Enabled turns multi-tenancy on: a request must then name its tenant
	// in HeaderName. Off, every request belongs to DefaultTenant.
	Enabled bool
}

// FromRequest returns the tenant of r.
func (res Resolver) FromRequest(r *http.Request) (string, error) {
	if !res.Enabled {
		return DefaultTenant, nil
	}
	vals := r.Header.Values(HeaderName)
	if len(vals) == 0 || vals[0] == "" {
		return "", ErrNoTenant
	}
	if len(vals) > 1 {
		return "", fmt.Errorf("%d %s headers; a request belongs to exactly one tenant", len(vals), HeaderName)
	}
	if err := Validate(vals[0]); err != nil {
		return "", err
	}
	return vals[0], nil
}

// Middleware puts the tenant of each request into its context, and answers
// 401 Unauthorized, naming the problem, to a request without a valid one.
func (res Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(With(r.Context(), id)))
	})
}

// InjectHeader sets the tenant of ctx on an outgoing HTTP request, for
// components that call each other over HTTP (forwarding, fan-out).
func InjectHeader(ctx context.Context, r *http.Request) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	r.Header.Set(HeaderName, id)
	return nil
}

// FromIncomingContext returns the tenant a gRPC client put into the metadata
// of the call whose server context is ctx; an error with codes.Unauthenticated
// if there is none.
func FromIncomingContext(ctx context.Context) (string, error) {
	// ValueFromIncomingContext reads the one key without copying the whole
	// metadata map, which FromIncomingContext would do on every call.
	vals := metadata.ValueFromIncomingContext(ctx, metadataKey)
	if len(vals) != 1 || vals[0] == "" {
		return "", status.Error(codes.Unauthenticated, ErrNoTenant.Error())
	}
	if err := Validate(vals[0]); err != nil {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return vals[0], nil
}

// outgoing returns ctx with the tenant of ctx in its outgoing gRPC metadata.
func outgoing(ctx context.Context) (context.Context, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return metadata.AppendToOutgoingContext(ctx, metadataKey, id), nil
}

// UnaryClientInterceptor sends the tenant of each call's context as gRPC
// metadata. A call without a tenant fails before it leaves the process.
func UnaryClientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := outgoing(ctx)
	if err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// StreamClientInterceptor is UnaryClientInterceptor for streaming calls.
func StreamClientInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := outgoing(ctx)
	if err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}
