// Package strictcbor is the one CBOR decoding profile for what peers send
// each other (plans, pools' partials and reports): bounded depth, arrays
// and maps, no duplicate or unknown keys, no indefinite lengths, no tags,
// valid UTF-8. Each decoder adds its own checks of meaning.
package strictcbor

import "github.com/fxamacker/cbor/v2"

// DecMode is the strict profile with the given bounds on nesting, array
// elements and map pairs (at least 16: the library's floor). It panics on
// bounds the library refuses: they are constants of the caller.
func DecMode(nested, arrays, pairs int) cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels:   nested,
		MaxArrayElements:  arrays,
		MaxMapPairs:       max(pairs, 16),
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}
