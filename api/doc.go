// Package api is the contract between a peerq agent and its clients: the
// answer to a statement (Answer, with raw values for scripts and text with
// units for people, and its Meta: how complete it is), the progress of a
// running statement, the error codes, the NDJSON lines of the local HTTP
// API (docs/API.md), and the Client that `peerq query` and `peerq shell`
// use. It holds no engine: node implements Executor for an agent's own
// peer and server serves the peer over HTTP; Client implements Executor
// over HTTP; the shell takes any Executor.
//
// # Usage
//
//	c, err := api.Locate(api.Options{DataDir: dir})   // address and token
//	ans, err := c.Execute(ctx, "SELECT COUNT(*) FROM peers", func(p api.Progress) { ... })
//	switch {
//	case errors.Is(err, api.ErrTimeout):        // ans is partial
//	case errors.Is(err, api.ErrNotEnoughPeers): // a RESERVE got nothing
//	}
package api
