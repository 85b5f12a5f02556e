package wire

import (
	"errors"
	"strings"
	"testing"
)

var errBad = errors.New("test: bad")

func TestReader(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		read func(r *Reader)
		want string // "" for success, else a substring of the error
	}{
		{"field", []byte{2, 'h', 'i'}, func(r *Reader) {
			if got := string(r.Field(8)); got != "hi" {
				t.Errorf("field = %q", got)
			}
		}, ""},
		{"field over limit", []byte{3, 'a', 'b', 'c'}, func(r *Reader) { r.Field(2) }, "length out of range at byte 1"},
		{"length past end", []byte{9, 'a'}, func(r *Reader) { r.Field(100) }, "length out of range"},
		{"trailing", []byte{1, 2}, func(r *Reader) { r.Byte() }, "trailing bytes at byte 1"},
		{"truncated uint64", []byte{1, 2, 3}, func(r *Reader) { r.Uint64() }, "truncated at byte 0"},
		{"padded varint", []byte{0x80, 0}, func(r *Reader) { r.Uvarint() }, "bad varint"},
		{"first failure sticks", []byte{}, func(r *Reader) {
			r.Byte()
			r.Fail("later")
			if r.Uvarint() != 0 || r.Next(0) != nil {
				t.Error("a read after a failure returned data")
			}
		}, "truncated at byte 0"},
		{"rest", []byte{7, 8, 9}, func(r *Reader) {
			r.Byte()
			if got := r.Rest(); len(got) != 2 || got[0] != 8 {
				t.Errorf("rest = %v", got)
			}
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(c.in, errBad)
			c.read(r)
			err := r.Done()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.want != "" && (!errors.Is(err, errBad) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want %q wrapping errBad", err, c.want)
			}
		})
	}
}

// Bytes copies and Next aliases: a decoded message must not change when
// the buffer it came from is reused, unless the caller chose Next.
func TestReaderCopies(t *testing.T) {
	in := []byte{'a', 'b'}
	r := NewReader(in, errBad)
	copied, aliased := r.Bytes(1), r.Next(1)
	in[0], in[1] = 'x', 'y'
	if copied[0] != 'a' || aliased[0] != 'y' {
		t.Fatalf("copied %q aliased %q", copied, aliased)
	}
	if cap(aliased) != 1 {
		t.Fatalf("Next's result can grow into the input: cap %d", cap(aliased))
	}
}
