// Package resp reads client requests and writes replies in the Redis
// serialization protocol (RESP2) for dbx's server. It replaces redcon's
// reader, which trusted declared lengths: "*1\r\n$9223372036854775800\r\n"
// overflowed an index and panicked the process, and "*9223372036854775807\r\n"
// made it loop that many times before any data arrived.
//
// # Usage
//
//	budget := resp.NewBudget(1 << 30)                 // node-wide input bytes
//	rd := resp.NewReader(conn, resp.DefaultLimits(), budget, needAuth)
//	wr := resp.NewWriter(conn)
//	for {
//		args, err := rd.Next()
//		if err == resp.ErrIncomplete {
//			wr.Flush()                                // a pipeline's replies go out together
//			if err = rd.Fill(); err != nil { ... }    // io.EOF, ErrRequestTooLarge, ErrInputMemory
//			continue
//		}
//		if err != nil { ... }                         // *ProtocolError: reply, then close
//		handle(args, wr)                              // args alias the buffer until the next call
//	}
//	rd.Release()
//
// # Limits
//
// Every declared count and length is checked before it is used, against
// Limits (Redis's own as the model): a multibulk count over ArgsMax is
// "invalid multibulk length", a bulk over BulkBytesMax "invalid bulk
// length", a header or inline line over InlineBytesMax "too big ... string"
// / "too big inline request"; while unauthenticated, more than
// UnauthArgsMax arguments or a bulk over UnauthBulkBytesMax are refused
// ("unauthenticated multibulk length" / "unauthenticated bulk length") as
// Redis 7 does. A request whose declared or received size passes
// RequestBytesMax is ErrRequestTooLarge.
//
// No buffer is sized by a declared length: the read buffer starts at
// 16 KiB and doubles only when one incomplete request fills it, so it is
// at most about twice what that request actually sent; it shrinks back when
// empty. Every byte of buffer is reserved from the Budget first. Parsing is
// incremental (each byte is examined once, also for a slow client), so the
// work per Fill is bounded by the bytes received.
//
// # Caveats
//
//   - "*0" and "*-1" requests and blank inline lines are skipped without a
//     reply, as Redis does.
//   - Inline requests follow Redis's quoting rules, except that a quote in
//     the middle of an unquoted word is taken literally.
//   - The reader checks the CRLF after a bulk's data (Redis skips two
//     bytes unchecked).
package resp
