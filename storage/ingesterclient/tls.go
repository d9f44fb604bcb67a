package ingesterclient

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pharos-tsdb/pharos/internal/tlsconfig"
)

// transportCredentials are TLS credentials when cfg turns TLS on, else
// plaintext. An ingester whose server runs TLS refuses the plaintext ones.
func transportCredentials(cfg tlsconfig.ClientConfig) (credentials.TransportCredentials, error) {
	tc, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if tc == nil {
		return insecure.NewCredentials(), nil
	}
	return credentials.NewTLS(tc), nil
}

// ServerTLSOption is the gRPC server option that makes an ingester's server
// speak only TLS as cfg says (mTLS with client_auth require_and_verify); nil
// when TLS is off.
func ServerTLSOption(cfg tlsconfig.ServerConfig) (grpc.ServerOption, error) {
	tc, err := cfg.Build()
	if err != nil || tc == nil {
		return nil, err
	}
	return grpc.Creds(credentials.NewTLS(tc)), nil
}
