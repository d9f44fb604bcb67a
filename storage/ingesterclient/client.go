package ingesterclient

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Config is the client side of the connection to an ingester.
type Config struct {
	// Compression is "", "gzip", "snappy", "s2" or "zstd".
	Compression    string        `yaml:"grpc_compression"`
	MaxRecvMsgSize int           `yaml:"max_recv_msg_size"`
	MaxSendMsgSize int           `yaml:"max_send_msg_size"`
	RemoteTimeout  time.Duration `yaml:"remote_timeout"`
	// TLS is the client side of the ingesters' grpc_tls (see tls.go).
	TLS tlsconfig.ClientConfig `yaml:"tls"`
}

// RegisterFlags registers the client flags under prefix (e.g. "ingester.client.").
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.Compression, prefix+"grpc-compression", "", `Compression of ingester gRPC traffic: "", "gzip", "snappy", "s2" or "zstd".`)
	fs.IntVar(&c.MaxRecvMsgSize, prefix+"max-recv-msg-size", 100<<20, "Maximum size in bytes of a gRPC message received from an ingester.")
	fs.IntVar(&c.MaxSendMsgSize, prefix+"max-send-msg-size", 100<<20, "Maximum size in bytes of a gRPC message sent to an ingester.")
	fs.DurationVar(&c.RemoteTimeout, prefix+"remote-timeout", 5*time.Second, "Timeout of a unary call (e.g. Push) to an ingester.")
	c.TLS.RegisterFlags(prefix+"tls.", fs)
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch c.Compression {
	case "", "gzip", CompressionSnappy, CompressionS2, CompressionZstd:
	default:
		return fmt.Errorf("grpc_compression: unknown compression %q (want one of \"\", gzip, snappy, s2, zstd)", c.Compression)
	}
	if c.MaxRecvMsgSize <= 0 || c.MaxSendMsgSize <= 0 {
		return errors.New("max_recv_msg_size and max_send_msg_size must be positive")
	}
	if c.RemoteTimeout <= 0 {
		return errors.New("remote_timeout must be positive")
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// Client is a connection to one ingester. It is safe for concurrent use.
type Client struct {
	ingesterpb.IngesterClient
	conn *grpc.ClientConn
	addr string
}

// Dial returns a client for the ingester at addr (host:port). The connection
// is established lazily and re-established by gRPC after failures.
//
// Every call sends the tenant of its context (tenant.With); a call whose
// context has none fails with codes.Unauthenticated before it leaves the
// process. Interceptors in opts run before that, so they may set one.
func Dial(addr string, cfg Config, opts ...grpc.DialOption) (*Client, error) {
	callOpts := []grpc.CallOption{
		grpc.ForceCodecV2(Codec{}),
		grpc.MaxCallRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxCallSendMsgSize(cfg.MaxSendMsgSize),
	}
	if cfg.Compression != "" {
		callOpts = append(callOpts, grpc.UseCompressor(cfg.Compression))
	}
	creds, err := transportCredentials(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(callOpts...),
		experimental.WithBufferPool(buffers),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}, opts...)
	all = append(all,
		grpc.WithChainUnaryInterceptor(tenant.UnaryClientInterceptor),
		grpc.WithChainStreamInterceptor(tenant.StreamClientInterceptor),
	)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
	}
	return &Client{IngesterClient: ingesterpb.NewIngesterClient(conn), conn: conn, addr: addr}, nil
}

// Addr is the address the client was dialled with.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ServerOptions are the options an ingester gRPC server needs to talk to Client.
func ServerOptions(maxRecvMsgSize, maxSendMsgSize int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec{}),
		experimental.BufferPool(buffers),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.MaxSendMsgSize(maxSendMsgSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}
