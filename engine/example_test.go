package engine_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/dbx-kv/dbx/engine"
)

// Example writes keys in two buckets (one atomic batch across shards),
// takes a snapshot, overwrites a key, reopens the store from disk and scans
// a bucket range.
func Example() {
	dir, err := os.MkdirTemp("", "dbx-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := engine.Open(dir, engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	var b engine.Batch
	b.Set(12182, []byte("foo"), []byte("bar"))
	b.Set(5061, []byte("user:1"), []byte("alice"))
	if err := s.Write(ctx, &b); err != nil {
		log.Fatal(err)
	}
	sn, _ := s.Snapshot()
	_ = s.Put(ctx, 12182, []byte("foo"), []byte("baz"))
	old, _ := sn.Get(12182, []byte("foo"))
	sn.Close()
	fmt.Printf("snapshot sees foo=%s\n", old)
	if err := s.Close(); err != nil { // no flush: the WAL is replayed on open
		log.Fatal(err)
	}

	s, err = engine.Open(dir, engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	it, _ := s.NewIter(0, 16383)
	for it.First(); it.Valid(); it.Next() {
		fmt.Printf("bucket %d: %s=%s\n", it.Bucket(), it.Key(), it.Value())
	}
	if err := it.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// snapshot sees foo=bar
	// bucket 5061: user:1=alice
	// bucket 12182: foo=baz
}
