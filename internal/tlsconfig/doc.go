// Package tlsconfig holds the YAML and flag configuration of Pharos's
// encrypted and authenticated links, and turns it into *tls.Config values
// and HTTP round trippers.
//
// Three shapes cover every link. ServerConfig is the server end of a
// client/server link (the gRPC server of an ingester): a certificate and,
// for mTLS, the CA that client certificates must chain to. ClientConfig is
// the client end (distributors and queriers dialling ingesters, internal
// HTTP clients); its YAML keys are those of prometheus/common's
// config.TLSConfig, so operators write what they know from scrape configs.
// PeerConfig is a symmetric link between equals (the ruler's raft
// transport): each side both serves and dials, with one certificate and one
// CA, and always requires the other side's certificate.
//
// Certificates and keys are read from files at each handshake (when the
// files changed), so a rotated certificate takes effect without a restart,
// as in Prometheus's web.config.file.
package tlsconfig
