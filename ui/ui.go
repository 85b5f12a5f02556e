package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// CookieName is the cookie that carries the API token for the console.
const CookieName = "peerq_token"

// Handler serves the console's files under /ui/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	return http.StripPrefix("/ui/", http.FileServerFS(sub))
}
