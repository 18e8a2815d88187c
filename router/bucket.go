package router

import (
	"bytes"
	"strings"

	"github.com/dbx-kv/dbx/ring"
)

// NumBuckets is the number of buckets (Redis Cluster's hash slots).
const NumBuckets = ring.NumBuckets

// crcTable is the CRC16-XMODEM (CCITT polynomial 0x1021, initial value 0,
// no reflection, no final xor) table, byte at a time, as in Redis's
// crc16.c.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc16 is CRC16-XMODEM of s.
func crc16[T ~string | ~[]byte](s T) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

// Bucket returns key's bucket: CRC16 of the key's hash tag (see HashTag)
// modulo NumBuckets. It equals Redis Cluster's CLUSTER KEYSLOT.
func Bucket(key []byte) uint16 {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) & (NumBuckets - 1)
}

// BucketString is Bucket for a string key; it does not allocate.
func BucketString(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) & (NumBuckets - 1)
}

// HashTag returns the part of key that Bucket hashes, as a subslice of key:
// if key contains a '{' and, after the first '{', a '}' with at least one
// byte between them, the bytes between that '{' and the first '}' after it;
// otherwise the whole key. So "{user1000}.following" and
// "{user1000}.followers" share "user1000", "foo{}{bar}" hashes whole and
// "foo{{bar}}zap" hashes "{bar".
func HashTag(key []byte) []byte {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
