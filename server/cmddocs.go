package server

// cmdDoc is one command's COMMAND DOCS entry.
type cmdDoc struct {
	summary, since, group, complexity string
}

// commandDocs documents every command of the table (TestCommandDocsComplete
// fails when one is missing): Redis's summaries, with what dbx does
// differently said in the summary.
var commandDocs = map[string]cmdDoc{
	"ping":        {"Returns the server's liveliness response.", "1.0.0", "connection", "O(1)"},
	"echo":        {"Returns the given string.", "1.0.0", "connection", "O(1)"},
	"quit":        {"Closes the connection.", "1.0.0", "connection", "O(1)"},
	"auth":        {"Authenticates the connection (user \"default\" only).", "1.0.0", "connection", "O(N) where N is the number of passwords defined for the user"},
	"hello":       {"Handshakes with the server (RESP2 only: HELLO 3 answers NOPROTO).", "6.0.0", "connection", "O(1)"},
	"client":      {"A container for client connection commands: ID, GETNAME, SETNAME, SETINFO, INFO, LIST, KILL, NO-EVICT, NO-TOUCH, PAUSE, UNPAUSE.", "2.4.0", "connection", "Depends on subcommand."},
	"select":      {"Changes the selected database (only 0 exists: cluster mode).", "1.0.0", "connection", "O(1)"},
	"readonly":    {"Enables read-only queries for a connection to a Redis Cluster replica node (accepted; no effect).", "3.0.0", "cluster", "O(1)"},
	"readwrite":   {"Enables read-write queries for a connection to a Redis Cluster replica node (accepted; no effect).", "3.0.0", "cluster", "O(1)"},
	"command":     {"Returns detailed information about all commands (COUNT, INFO, DOCS, LIST).", "2.8.13", "server", "O(N) where N is the total number of commands"},
	"cluster":     {"A container for Redis Cluster commands: SLOTS, SHARDS, NODES, KEYSLOT, MYID, INFO.", "3.0.0", "cluster", "Depends on subcommand."},
	"info":        {"Returns information and statistics about the server.", "1.0.0", "server", "O(1)"},
	"dbsize":      {"Returns the number of keys (the cluster's; this node's on the cluster port).", "1.0.0", "server", "O(N) where N is the number of keys"},
	"scan":        {"Iterates over the key names (cursors are buckets).", "2.8.0", "generic", "O(1) for every call. O(N) for a complete iteration."},
	"get":         {"Returns the string value of a key.", "1.0.0", "string", "O(1)"},
	"set":         {"Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", "1.0.0", "string", "O(1)"},
	"setnx":       {"Set the string value of a key only when the key doesn't exist.", "1.0.0", "string", "O(1)"},
	"setex":       {"Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", "2.0.0", "string", "O(1)"},
	"psetex":      {"Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", "2.6.0", "string", "O(1)"},
	"del":         {"Deletes one or more keys (atomically across nodes).", "1.0.0", "generic", "O(N) where N is the number of keys that will be removed."},
	"unlink":      {"Asynchronously deletes one or more keys (as DEL in dbx).", "4.0.0", "generic", "O(1) for each key removed."},
	"exists":      {"Determines whether one or more keys exist.", "1.0.0", "generic", "O(N) where N is the number of keys to check."},
	"type":        {"Determines the type of value stored at a key (string or none).", "1.0.0", "generic", "O(1)"},
	"mget":        {"Atomically returns the string values of one or more keys.", "1.0.0", "string", "O(N) where N is the number of keys to retrieve."},
	"mset":        {"Atomically creates or modifies the string values of one or more keys (across nodes).", "1.0.1", "string", "O(N) where N is the number of keys to set."},
	"msetnx":      {"Atomically modifies the string values of one or more keys only when all keys don't exist.", "1.0.1", "string", "O(N) where N is the number of keys to set."},
	"incr":        {"Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0", "string", "O(1)"},
	"decr":        {"Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0", "string", "O(1)"},
	"incrby":      {"Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "1.0.0", "string", "O(1)"},
	"decrby":      {"Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", "1.0.0", "string", "O(1)"},
	"expire":      {"Sets the expiration time of a key in seconds (no NX/XX/GT/LT).", "1.0.0", "generic", "O(1)"},
	"pexpire":     {"Sets the expiration time of a key in milliseconds (no NX/XX/GT/LT).", "2.6.0", "generic", "O(1)"},
	"expireat":    {"Sets the expiration time of a key to a Unix timestamp.", "1.2.0", "generic", "O(1)"},
	"pexpireat":   {"Sets the expiration time of a key to a Unix milliseconds timestamp.", "2.6.0", "generic", "O(1)"},
	"ttl":         {"Returns the expiration time in seconds of a key.", "1.0.0", "generic", "O(1)"},
	"pttl":        {"Returns the expiration time in milliseconds of a key.", "2.6.0", "generic", "O(1)"},
	"expiretime":  {"Returns the expiration time of a key as a Unix timestamp.", "7.0.0", "generic", "O(1)"},
	"pexpiretime": {"Returns the expiration time of a key as a Unix milliseconds timestamp.", "7.0.0", "generic", "O(1)"},
	"persist":     {"Removes the expiration time of a key.", "2.2.0", "generic", "O(1)"},
	"multi":       {"Starts a transaction.", "1.2.0", "transactions", "O(1)"},
	"exec":        {"Executes all commands in a transaction (two-phase commit across nodes).", "1.2.0", "transactions", "Depends on commands in the transaction"},
	"discard":     {"Discards a transaction.", "2.0.0", "transactions", "O(N), when N is the number of queued commands"},
	"watch":       {"Monitors changes to keys to determine the execution of a transaction.", "2.2.0", "transactions", "O(1) for every key."},
	"unwatch":     {"Forgets about watched keys of a transaction.", "2.2.0", "transactions", "O(1)"},
	"config":      {"A container for server configuration commands: GET, SET, RESETSTAT (REWRITE is refused).", "2.0.0", "server", "Depends on subcommand."},
	"slowlog":     {"A container for slow log commands: GET, LEN, RESET.", "2.2.12", "server", "Depends on subcommand."},
	"latency":     {"A container for latency diagnostics commands: LATEST, HISTORY, RESET, DOCTOR.", "2.8.13", "server", "Depends on subcommand."},
	"memory":      {"A container for memory diagnostics commands: USAGE.", "4.0.0", "server", "Depends on subcommand."},
	"monitor":     {"Listens for all requests received by the server in real-time (bounded: a monitor that falls behind is disconnected).", "1.0.0", "server", ""},
	"time":        {"Returns the server time.", "2.6.0", "server", "O(1)"},
	"role":        {"Returns the replication role.", "2.8.12", "server", "O(1)"},
	"wait":        {"Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed (0 replicas while replication is off).", "3.0.0", "generic", "O(1)"},
	"strlen":      {"Returns the length of a string value.", "2.2.0", "string", "O(1)"},
}

// writeCommandDocs writes one COMMAND DOCS entry: name, then its doc map.
func writeCommandDocs(c *session, name string) {
	d := commandDocs[name]
	c.WriteBulkString(name)
	n := 6
	if d.complexity != "" {
		n = 8
	}
	c.WriteArray(n)
	c.WriteBulkString("summary")
	c.WriteBulkString(d.summary)
	c.WriteBulkString("since")
	c.WriteBulkString(d.since)
	c.WriteBulkString("group")
	c.WriteBulkString(d.group)
	if d.complexity != "" {
		c.WriteBulkString("complexity")
		c.WriteBulkString(d.complexity)
	}
}
