package node

// Stats counts what a peer's runtime and its lease keeper did, and holds
// what they do now (Running, Asking, Queued, LeaseHeld, StorageFault:
// gauges).
type Stats struct {
	Rounds       int64
	Exchanges    int64 // exchanges this peer started
	Failed       int64 // exchanges that got no answer
	Served       int64 // exchanges this peer answered
	Joined       int64 // queries this peer joined on hearing of them
	Malformed    int64 // exchanges, plans or messages refused as malformed
	Refused      int64 // queries this peer refused to join, at MaxQueries
	Overloaded   int64 // queries this peer refused to ask, at MaxAsk and AskQueue
	Probes       int64 // suspects probed
	Ended        int64 // instances dropped early on hearing their query ended
	Stale        int64 // messages for queries this peer has already collected
	Excluded     int64 // queries the others left this peer out of (it stopped)
	Unreadable   int64 // queries this peer asked whose answer could not be read (ended partial, with the reason)
	TagFailures  int64 // tag updates (the lease, the storage fault) the network refused
	BadLeaseTags int64 // members' lease tags that did not parse, once per member and tag
	Skipped      int64 // batches not sent: an exchange with that peer was still out
	Announced    int64 // queries announced to peers beyond the round's partner (Config.Fanout)
	// AnnouncedHolders counts the announcements answered by a peer that
	// held the query already (run.StopAnnouncing of them stop a peer's).
	AnnouncedHolders int64
	// HandedOver counts the queries this peer handed over in its replies
	// to peers that asked it something and were not known to hold them
	// (the plan alone, as an announcement).
	HandedOver    int64
	Lost          int64 // members this peer found lost (probes, refused connections), left out of its queries
	FalseLost     int64 // members found lost by this peer's probes that answered after (local health: degrade)
	Indirect      int64 // indirect probes this peer ran for others
	BytesSent     int64
	BytesReceived int64
	// Lease and name requests refused as not signed by the owner they
	// name (Forged) or made for an earlier incarnation of this peer
	// (StaleIncarnation); owners' answers signed by another key than the
	// lease was claimed with (OwnerKeyChanged: the owner lost its data dir).
	Forged, StaleIncarnation, OwnerKeyChanged int64
	// RelayForged counts the replies of members of other pools that a
	// relay passed on without their member's signature (relay.go).
	RelayForged int64
	// ForgedRecords are records (top-k entries) refused as not signed
	// by the node they name (seal.go).
	ForgedRecords int64

	Running      int64 // query instances this peer takes part in
	Asking       int64 // statements this peer asks
	Queued       int64 // statements waiting for a place to be asked
	LeaseHeld    bool  // this peer is a member of a subcloud
	StorageFault bool  // this peer's data dir cannot be written
}

// PoolStats is what the pools role shows in a cloud of pools (/metrics):
// this peer's pool, and whether it is one of the pool's gateways in the
// cloud pool now; while it is, how many pools its view of the cloud pool
// holds (those listed now, and for Config.PoolMemory those that lost
// every gateway) and how many of them have fewer gateways than
// Config.Gateways (where one gateway that lies or hangs leaves the rest
// to agree alone, or no majority); the gateways this peer asks last now,
// their relays or statements having failed lately (a gateway that
// hangs; named as this peer asked them: by their name in its pool for
// its own pool's, in the cloud pool for the others'), and the failures
// noted in all; and what it served as a gateway.
type PoolStats struct {
	Pool         string
	Gateway      bool
	Pools, Short int
	Failing      int
	// Failures counts the failures of gateways this peer noted (each
	// relay or statement through one that got no answer).
	Failures int64
	// Relays counts the lease requests this peer relayed as a gateway,
	// by way — [0] out: for a member of its pool, through another pool's
	// gateways; [1] in: from another pool, to a member of its own — and
	// by outcome: delivered (the member's signed reply), unreachable
	// (not live in its pool), failed (no answer in time, or refused).
	Relays [len(relayWays)][len(relayResults)]int64
	// Busy counts vouches and relays refused at the gateway's limit.
	Busy int64
	// Runs counts the statements this peer ran in its pool for the
	// cloud as a gateway, by the status of the partial it reported
	// (exact, converged, partial, …, failed).
	Runs map[string]int64
}
