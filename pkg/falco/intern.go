package falco

import (
	"hash/maphash"
	"sync/atomic"
)

// Field names, and many values (host names, images, "true"), repeat from
// event to event. intern returns a string equal to b, from a small cache
// when it was seen lately, saving an allocation and garbage per field. The
// cache is a fixed table of short strings: bounded and lock-free. A miss
// costs the allocation it would have saved plus a small one, the string's
// header that the table points to.
func intern(b []byte) string {
	if len(b) > maxInterned {
		return string(b)
	}
	slot := &internTable[maphash.Bytes(internSeed, b)%uint64(len(internTable))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}

const maxInterned = 64

var (
	internSeed  = maphash.MakeSeed()
	internTable [4096]atomic.Pointer[string]
)
