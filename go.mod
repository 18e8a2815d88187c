module github.com/dbx-kv/dbx

go 1.26

require github.com/buraksezer/consistent v1.0.0

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)
