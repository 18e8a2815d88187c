package ring

// The hash functions below are part of the placement format: changing any
// of them changes every assignment.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// mix64 is the splitmix64 finalizer: a bijection on uint64 with full
// avalanche, used to repair FNV-1a's weak low-entropy mixing.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hash64 is FNV-1a over data followed by mix64.
func hash64(data []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range data {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// pointHash is the ring position of point i of node id: hash64 of the ID's
// bytes followed by i as 8 little-endian bytes. The fixed-width suffix keeps
// (id, i) pairs unambiguous ("n1"‖i never equals "n11"‖j).
func pointHash(id string, i uint64) uint64 {
	return pointHashFrom(idHash(id), i)
}

// idHash is the FNV-1a state after the bytes of id.
func idHash(id string) uint64 {
	h := uint64(fnvOffset64)
	for j := 0; j < len(id); j++ {
		h ^= uint64(id[j])
		h *= fnvPrime64
	}
	return h
}

// pointHashFrom continues the FNV-1a state h with i (8 bytes, little
// endian) and finalizes it.
func pointHashFrom(h, i uint64) uint64 {
	for range 8 {
		h ^= i & 0xff
		h *= fnvPrime64
		i >>= 8
	}
	return mix64(h)
}

// bucketSlot is the width of one bucket's slot of the ring: 2^64 / NumBuckets.
const bucketSlot = 1 << 64 / NumBuckets

// bucketPoint is the ring position of bucket b: the centre of the b-th of
// NumBuckets equal slots, b × 2^64/NumBuckets + 2^64/(2 × NumBuckets).
// Evenly spaced points add no noise of their own to a node's natural
// bucket count (hashed ones did), so the load bounds displace about half as
// many buckets and a change moves fewer between uninvolved nodes. Distinct
// buckets get distinct points, in bucket order.
func bucketPoint(b int) uint64 {
	return uint64(b)*bucketSlot + bucketSlot/2
}
