// Package cluster places series on Pharos's ingesters: each ingester runs a
// Lifecycler that registers it in the token ring and heartbeats, and every
// process that routes or reads data holds a Ring, a cached view of the
// gossiped descriptor that answers "which instances own this key".
//
// The pieces: package cluster/ring is the pure core (descriptor CRDT,
// tokens, replication sets), package cluster/gossip carries the descriptor
// over memberlist, and this package holds the lifecycle, the client view,
// the /ring status page, and an in-memory KV for single-process setups.
//
// An instance moves PENDING → JOINING → ACTIVE when its Lifecycler runs,
// optionally ACTIVE ⇄ READONLY by operator action, and to LEAVING on
// shutdown; with unregister_on_shutdown its entry then becomes a LEFT
// tombstone, otherwise it stays (LEAVING, tokens kept) for the restart.
// Writes go to ACTIVE instances only; reads also to LEAVING and READONLY.
//
// Wiring, in order (shutdown in reverse, so the last ring updates are
// gossiped before memberlist stops):
//
//	kv, _ := gossip.New(memberlistCfg, logger, reg)  // or NewMemKV() for all-in-one
//	go kv.Run(ctx)                                    // joins seeds, GC
//	r, _ := cluster.NewRing(ringCfg, kv, reg)         // distributor, querier, scraper
//	mux.Handle("/ring", r)
//	lc, _ := cluster.NewLifecycler(ringCfg, kv, filepath.Join(dataDir, "tokens"), logger, reg)
//	go lc.Run(ctx)                                    // ingester, after WAL replay
//	...
//	<-lcDone; kv.Close()
package cluster
