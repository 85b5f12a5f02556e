// Package api is the contract between a peerq agent and its clients: the
// Executor that runs statements, the error codes, the NDJSON lines of the
// local HTTP API (docs/API.md), which carry answer.Answers and their
// progress as JSON (raw values for scripts and text with units for
// people, and the Meta: how complete an answer is), and the Client that
// `peerq query` and `peerq shell` use. It holds no engine (it imports only
// answer, a leaf): node implements Executor for an agent's own peer and
// server serves the peer over HTTP; Client implements Executor over HTTP;
// the shell takes any Executor.
//
// # Usage
//
//	c, err := api.Locate(api.Options{DataDir: dir})   // address and token
//	ans, err := c.Execute(ctx, "SELECT COUNT(*) FROM peers", func(p answer.Progress) { ... })
//	switch {
//	case errors.Is(err, api.ErrTimeout):        // ans is partial
//	case errors.Is(err, api.ErrNotEnoughPeers): // a RESERVE got nothing
//	}
package api
