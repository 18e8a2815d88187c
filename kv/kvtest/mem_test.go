package kvtest_test

import (
	"testing"
	"time"

	"github.com/dbx-kv/dbx/kv/kvtest"
)

func TestMem(t *testing.T) {
	kvtest.Run(t, func(t *testing.T, now func() time.Time) kvtest.Keyspace { return kvtest.NewMem(now) })
}
