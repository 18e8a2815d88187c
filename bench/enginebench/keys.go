package main

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/dbx-kv/dbx/router"
)

// bucketsMax is the number of buckets (hash slots) of the key space.
const bucketsMax = router.NumBuckets

// bucketOf maps a key to its bucket as the server does: Redis Cluster's
// slot function (CRC16 of the hash tag, modulo 16384).
func bucketOf(key []byte) uint16 { return router.Bucket(key) }

// A prefixed key is what both engines store: the 2-byte big-endian bucket
// followed by the user key. dbx builds exactly these bytes internally from
// (bucket, key); Pebble gets them as its key, so both hold the same bytes in
// the same order.

// setPrefixed writes bucket||key into dst (len(dst) == 2+len(key)).
func setPrefixed(dst []byte) {
	binary.BigEndian.PutUint16(dst, bucketOf(dst[2:]))
}

// splitmix64 is a bijective mixer: distinct inputs give distinct,
// uniformly spread outputs.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// loadKey fills dst (2+keyBytes long) with the i-th key of the loaded data
// set: the key bytes are a pure function of (seed, i), so readers can pick a
// random index and rebuild an existing key without a key table in memory
// (which would pollute the RSS measurement).
func loadKey(dst []byte, seed uint64, i int) {
	k := dst[2:]
	x := seed ^ uint64(i)*0x2545f4914f6cdd1d
	for off := 0; off < len(k); off += 8 {
		x = splitmix64(x)
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x)
		copy(k[off:], w[:])
	}
	setPrefixed(dst)
}

// randomKey fills dst (2+keyBytes long) with a key drawn from r.
func randomKey(dst []byte, r *rand.Rand) {
	k := dst[2:]
	for off := 0; off < len(k); off += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(k[off:], w[:])
	}
	setPrefixed(dst)
}

// valueSource hands out value-sized windows of one random buffer: values
// are incompressible (neither engine gains from compression) and cost no
// allocation.
type valueSource struct {
	buf  []byte
	size int
}

func newValueSource(seed uint64, size int) *valueSource {
	r := rand.New(rand.NewPCG(seed, 0x76616c7565))
	buf := make([]byte, 1<<20+size)
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	return &valueSource{buf: buf, size: size}
}

// at returns the value for index i (stable for a given i).
func (v *valueSource) at(i uint64) []byte {
	off := int(splitmix64(i) % uint64(len(v.buf)-v.size))
	return v.buf[off : off+v.size : off+v.size]
}
