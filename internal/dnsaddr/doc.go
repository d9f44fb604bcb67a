// Package dnsaddr expands the address lists that name their peers through
// DNS, as a Kubernetes headless Service publishes them: host:port as it is,
// dns+name:port for every A/AAAA record of name at that port, and
// dnssrv+name for the hosts and ports of name's SRV records. The gossip
// seeds, the ruler's raft peers and the results cache's memcached servers
// are all such lists.
package dnsaddr
