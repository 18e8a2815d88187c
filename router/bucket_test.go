package router

import (
	"bytes"
	"testing"
	"unsafe"
)

// keyHashSlot is a line-by-line port of Redis Cluster's keyHashSlot
// (cluster.c), the reference the fuzz test compares against.
func keyHashSlot(key []byte) uint16 {
	keylen := len(key)
	var s, e int
	for s = 0; s < keylen; s++ {
		if key[s] == '{' {
			break
		}
	}
	if s == keylen {
		return crc16(key) & 0x3FFF
	}
	for e = s + 1; e < keylen; e++ {
		if key[e] == '}' {
			break
		}
	}
	if e == keylen || e == s+1 {
		return crc16(key) & 0x3FFF
	}
	return crc16(key[s+1:e]) & 0x3FFF
}

func TestCRC16CheckValue(t *testing.T) {
	// The standard check value of CRC-16/XMODEM, also in Redis's crc16.c.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
}

// TestBucketPublishedExamples checks slots published for CLUSTER KEYSLOT.
func TestBucketPublishedExamples(t *testing.T) {
	tests := []struct {
		key    string
		bucket uint16
		source string
	}{
		{"foo", 12182, "the dbx placement issue"},
		{"somekey", 11058, "redis.io CLUSTER KEYSLOT"},
		{"foo{hash_tag}", 2515, "redis.io CLUSTER KEYSLOT"},
		{"bar{hash_tag}", 2515, "redis.io CLUSTER KEYSLOT"},
		{"{user1}.following", 8106, "dragonflydb CLUSTER KEYSLOT"},
		{"8xjx7vWrfPq54mKfFD3Y1CcjjofpnAcQ", 5458, "redis-protocol (Rust) redis_keyslot docs"},
		{"my_key", 13711, "redis_cluster (Elixir) docs"},
		{"{user1234}:contact", 14020, "redis_cluster (Elixir) docs"},
		{"user:case", 9491, "redis-cli session"},
		{"user:case{1}", 9842, "redis-cli session"},
		{"user:info", 15429, "redis-cli session"},
		{"user:info{1}", 9842, "redis-cli session"},
		{"fyimk7v1CgnBo", 0, "mp911de: a key for every slot"},
		{"8HMdi", 1, "mp911de: a key for every slot"},
		{"IQhHSeAVHI", 2, "mp911de: a key for every slot"},
		{"N8mstVwJZoSaIg", 3, "mp911de: a key for every slot"},
		{"e2esUEU", 4, "mp911de: a key for every slot"},
		{"Yjj1RFQ5ME", 5, "mp911de: a key for every slot"},
	}
	for _, tt := range tests {
		if got := Bucket([]byte(tt.key)); got != tt.bucket {
			t.Errorf("Bucket(%q) = %d, want %d (%s)", tt.key, got, tt.bucket, tt.source)
		}
		if got := BucketString(tt.key); got != tt.bucket {
			t.Errorf("BucketString(%q) = %d, want %d (%s)", tt.key, got, tt.bucket, tt.source)
		}
	}
}

func TestHashTag(t *testing.T) {
	tests := []struct {
		key, tag string
	}{
		{"", ""},
		{"plain", "plain"},
		{"{user1000}.following", "user1000"},
		{"{user1000}.followers", "user1000"},
		{"foo{}{bar}", "foo{}{bar}"}, // empty first tag: whole key
		{"foo{{bar}}zap", "{bar"},    // first '{', first '}' after it
		{"foo{bar}{zap}", "bar"},     // first tag only
		{"{", "{"},
		{"}", "}"},
		{"{}", "{}"},
		{"}{a}", "a"},
		{"a{b", "a{b"},
		{"a}b{c", "a}b{c"},
		{"{a}", "a"},
		{"x{\x00}y", "\x00"},
		{"{{}}", "{"},
	}
	for _, tt := range tests {
		got := HashTag([]byte(tt.key))
		if string(got) != tt.tag {
			t.Errorf("HashTag(%q) = %q, want %q", tt.key, got, tt.tag)
		}
		if b, want := Bucket([]byte(tt.key)), crc16(tt.tag)&(NumBuckets-1); b != want {
			t.Errorf("Bucket(%q) = %d, want crc16(%q) = %d", tt.key, b, tt.tag, want)
		}
		if b, want := Bucket([]byte(tt.key)), keyHashSlot([]byte(tt.key)); b != want {
			t.Errorf("Bucket(%q) = %d, Redis gives %d", tt.key, b, want)
		}
	}
	if Bucket([]byte("{user1000}.following")) != Bucket([]byte("{user1000}.followers")) {
		t.Error("{user1000}.following and {user1000}.followers are in different buckets")
	}
}

func TestHashTagAliasesKey(t *testing.T) {
	key := []byte("prefix{tag}suffix")
	tag := HashTag(key)
	if &tag[0] != &key[7] || len(tag) != 3 {
		t.Fatalf("HashTag did not return the subslice key[7:10]")
	}
}

func TestBucketAllocs(t *testing.T) {
	key := []byte("{user1000}.following")
	skey := "0123456789abcdef"
	if n := testing.AllocsPerRun(100, func() { _ = Bucket(key) }); n != 0 {
		t.Errorf("Bucket allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = BucketString(skey) }); n != 0 {
		t.Errorf("BucketString allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = HashTag(key) }); n != 0 {
		t.Errorf("HashTag allocates %v times", n)
	}
}

// inside reports whether sub lies within s's memory.
func inside(sub, s []byte) bool {
	if len(sub) == 0 {
		return true
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(sub))), uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= lo && p+uintptr(len(sub)) <= lo+uintptr(len(s))
}

// FuzzHashTag checks the hash tag parser and Bucket against the Redis
// reference on arbitrary keys.
func FuzzHashTag(f *testing.F) {
	for _, k := range []string{"", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}{", "{}}", "\xff{\x00}"} {
		f.Add([]byte(k))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		b := Bucket(key)
		if b >= NumBuckets {
			t.Fatalf("Bucket(%q) = %d ≥ %d", key, b, NumBuckets)
		}
		if want := keyHashSlot(key); b != want {
			t.Fatalf("Bucket(%q) = %d, Redis keyHashSlot = %d", key, b, want)
		}
		if s := BucketString(string(key)); s != b {
			t.Fatalf("BucketString(%q) = %d, Bucket = %d", key, s, b)
		}
		tag := HashTag(key)
		if !inside(tag, key) {
			t.Fatalf("HashTag(%q) = %q is not a subslice of the key", key, tag)
		}
		if got := crc16(tag) & (NumBuckets - 1); got != b {
			t.Fatalf("crc16(HashTag(%q)) = %d, Bucket = %d", key, got, b)
		}
		// A tag is what Bucket hashes, so hashing it again changes nothing.
		if got := Bucket(tag); got != b {
			t.Fatalf("Bucket(HashTag(%q)) = %d, Bucket = %d", key, got, b)
		}
		if len(tag) != len(key) {
			// A real tag: non-empty, right after the key's first '{', closed
			// by the first '}' after it.
			i := bytes.IndexByte(key, '{')
			if len(tag) == 0 || i < 0 || &tag[0] != &key[i+1] || key[i+1+len(tag)] != '}' || bytes.IndexByte(tag, '}') >= 0 {
				t.Fatalf("HashTag(%q) = %q breaks the tag rule", key, tag)
			}
			// Anything around the tag does not change the bucket.
			wrapped := append(append([]byte("x"), key...), "}{z}"...)
			if Bucket(wrapped) != b {
				t.Fatalf("Bucket(%q) = %d, Bucket(%q) = %d: text around the tag changed the bucket", key, b, wrapped, Bucket(wrapped))
			}
		}
	})
}
