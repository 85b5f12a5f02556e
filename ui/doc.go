// Package ui is the agent's web console: static pages, embedded with
// go:embed and served by the agent's API at /ui/, that talk to the same
// HTTP API (docs/API.md) with the token kept in a cookie (HttpOnly,
// SameSite=Strict) set by the login form. No build step: plain HTML,
// CSS and JavaScript.
package ui
