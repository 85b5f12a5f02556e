// Package server serves a peer's statements over HTTP: the agent's local
// API (docs/API.md), its Prometheus metrics at /metrics and the web
// console (package ui's pages at /ui/, and their login form). It holds no
// engine: it is built over Peer, the few methods of the peer it serves
// that it needs (compile, check a WATCH, admit, run a plan or a WATCH, the
// catalog, the members — live, and those that failed or left — and their
// last events, one member's page, the metrics' collector), which
// *node.Node has. GET /v1/members lists the members with their status,
// GET /v1/nodes/{name} one member as the peer knows it (tags, lease,
// subclouds owned, membership events), bounded to MaxNodeEvents events.
//
// Every request but the console's (its pages, its login form, and / that
// leads to them) carries the agent's token: a header, a bearer token or
// the console's cookie (server.go). A statement is answered as NDJSON
// (query.go): whatever can refuse it — its JSON, its compilation, a
// WATCH's epoch, the peer's admission — is answered before the stream
// starts (400, 429 with Retry-After, 503); then progress lines and the
// result, or an answer per epoch of a WATCH, each write within
// WriteTimeout; a client that goes away or stops reading stops the
// statement.
//
// Overload (limit.go): the server holds at most Config.MaxConns
// connections (one beyond is answered 429 as it is accepted, before its
// request is read, and its socket kept a little to drop its request:
// linger_*.go) and serves Config.MaxRequests requests at once; every 429
// says when to come back, from the rate at which the agent finishes what
// it took (a pacer). A connection that sends no request within
// Config.HeaderTimeout is answered 408.
//
// # Usage
//
//	cfg := server.DefaultConfig()
//	cfg.Addr, cfg.Token = "127.0.0.1:7474", token
//	srv, err := server.Start(peer, cfg) // peer: a *node.Node or *node.Peer
//	fmt.Println(srv.Addr())
//	srv.Close()
//
// The caller's duties:
//
//  1. Give a Peer that is safe for concurrent use: each request calls it
//     on a goroutine of its own.
//  2. Listen on loopback (the token is the only guard; docs/SECURITY.md)
//     and keep the token secret.
//  3. Close the Server: it stops listening and waits at most 2 s for the
//     requests in flight; a statement that streams on ends when its
//     client goes or its peer closes.
package server
