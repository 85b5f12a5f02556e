package answer

import (
	"bytes"
	"encoding/json"
	"io"
)

// NewEncoder is the JSON encoder for everything peerq writes for people's
// tools (the API, -F json and ndjson): it does not escape <, > and & as
// \u003c, \u003e and \u0026 (encoding/json's default, meant for HTML
// pages), so that `mem_free >= 4GB` reads as written. One value a line.
func NewEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// Marshal is json.Marshal without HTML escaping (NewEncoder), and without
// the encoder's trailing newline.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
