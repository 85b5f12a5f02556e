package owner

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/subcloud"
)

// FuzzDecodeTable: the owner's table in either form, as a restart reads
// it; what it accepts is a state the machine can restore.
func FuzzDecodeTable(f *testing.F) {
	for _, file := range []string{"testdata/owned-v1.json", "testdata/owned-v3.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version": 2}`))
	f.Add(EncodeTable([]subcloud.OwnerState{{Subcloud: "x", Token: strings.Repeat("t", 32), Lease: time.Minute,
		Members: map[string]time.Time{"p1": time.Unix(1_800_000_000, 0)}, Order: []string{"p1"}, Target: 2, Repairs: 1,
		Dropped: map[string]time.Time{"p2": time.Unix(1_800_000_000, 0)}, Metered: time.Hour,
		Episodes: map[string]subcloud.Span{"p1": {Start: time.Unix(1_800_000_000, 0), Until: time.Unix(1_800_000_060, 0)}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		states, err := DecodeTable(b)
		if err != nil {
			return
		}
		for _, s := range states {
			if s.Subcloud == "" || len(s.Token) < 16 || s.Lease <= 0 {
				t.Fatalf("accepted %+v", s)
			}
			if _, err := subcloud.Restore(subcloud.DefaultOwnerConfig(), "me", s, nil); err != nil {
				t.Fatalf("accepted %+v, which the machine refuses: %v", s, err)
			}
		}
	})
}
