package api

import "time"

// Node is GET /v1/nodes/{name}: one member as the agent knows it, for the
// console's node page. Tags are the member's but its lease's (in Lease);
// everything is the agent's local knowledge, read without gossip.
type Node struct {
	Member
	// Self says the node is the agent's own peer.
	Self bool `json:"self"`
	// Identity is the member's public key, shortened, and Incarnation its
	// current incarnation (hex): new at every start.
	Identity    string `json:"identity,omitempty"`
	Incarnation string `json:"incarnation,omitempty"`
	// Lease is the lease the node holds, or nil.
	Lease *Lease `json:"lease"`
	// Owns are the subclouds it owns, as their members' leases show them.
	Owns []OwnedSubcloud `json:"owns"`
	// Events are the last membership events the agent saw (as GET
	// /v1/events lists them), oldest first: about the node, or, on the
	// agent's own node's page, all of them. The server fills them in.
	Events []MemberEvent `json:"events"`
}

// Lease is a member's lease in a subcloud.
type Lease struct {
	Subcloud string `json:"subcloud"`
	Owner    string `json:"owner"`
	// Expires is when the lease ends unless renewed; Since when the
	// subcloud was made (nil where unknown).
	Expires *time.Time `json:"expires,omitempty"`
	Since   *time.Time `json:"since,omitempty"`
}

// OwnedSubcloud is a subcloud a node owns, as its members' leases show it.
type OwnedSubcloud struct {
	Subcloud string   `json:"subcloud"`
	Members  []string `json:"members"`
	// EarliestExpiry is when the first of its members' leases ends unless
	// renewed.
	EarliestExpiry *time.Time `json:"earliest_expiry,omitempty"`
	// Source is "its owner's table" when the agent is the owner, else
	// "members' tags" (as old as Serf's gossip).
	Source string `json:"source"`
}
