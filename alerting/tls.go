package alerting

import (
	"errors"
	"fmt"

	"github.com/prometheus/alertmanager/cluster"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
)

// validateClusterTLS checks notifier.cluster_tls, which excludes the
// upstream file.
func (c *Config) validateClusterTLS() error {
	if err := c.ClusterTLS.Validate(); err != nil {
		return fmt.Errorf("notifier.cluster_tls: %w", err)
	}
	if c.ClusterTLS.Enabled() && c.ClusterTLSConfigFile != "" {
		return errors.New("notifier.cluster_tls and notifier.cluster_tls_config: set at most one")
	}
	return nil
}

// clusterTLSConfig is the TLS transport of the notifier cluster: the
// upstream file when one is named, else one built from cluster_tls (each
// peer serves and dials with the same certificate, and requires the
// other's), else nil for plain memberlist.
func clusterTLSConfig(c Config) (*cluster.TLSTransportConfig, error) {
	if c.ClusterTLSConfigFile != "" || !c.ClusterTLS.Enabled() {
		return cluster.GetTLSTransportConfig(c.ClusterTLSConfigFile)
	}
	if err := c.validateClusterTLS(); err != nil {
		return nil, err
	}
	p := c.ClusterTLS
	return &cluster.TLSTransportConfig{
		TLSServerConfig: &web.TLSConfig{
			TLSCertPath: p.CertFile,
			TLSKeyPath:  p.KeyFile,
			ClientCAs:   p.CAFile,
			ClientAuth:  "RequireAndVerifyClientCert",
		},
		TLSClientConfig: &commoncfg.TLSConfig{
			CAFile:     p.CAFile,
			CertFile:   p.CertFile,
			KeyFile:    p.KeyFile,
			ServerName: p.ServerName,
		},
	}, nil
}
