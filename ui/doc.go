// Package ui is the agent's web console: static pages, embedded with
// go:embed and served by the agent's API at /ui/, that talk to the same
// HTTP API (docs/API.md) with the token kept in a cookie (HttpOnly,
// SameSite=Strict) set by the login form. No build step: plain HTML,
// CSS and JavaScript.
//
// One page, two views beside the members and subclouds: statements (#/:
// a statement's rows, status and progress, EXPLAIN, a WATCH's live chart
// with a series per group or node, named by the answer's key columns,
// and Stop) and a node's page (#/nodes/NAME, GET /v1/nodes/{name}: its
// tags, lease, the subclouds it owns, its membership events), reached by
// clicking a member's name wherever one shows. Each statement's output
// replaces the last one's; the members (failed ones in red, with when
// they were last seen) and an open node page are read again every 5 s,
// the subclouds every 30 s. server's TestConsoleInBrowser drives it in
// headless Chromium.
package ui
