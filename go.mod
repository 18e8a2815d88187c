module github.com/dbx-kv/dbx

go 1.26
