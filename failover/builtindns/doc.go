// Package builtindns is lumos's built-in authoritative DNS server, the
// default DNS provider. Every control node runs one; it answers for the
// managed domains from the node's replicated state, so whichever control
// node a resolver asks, it learns the IP of the domain's active shield.
//
// # Lifecycle
//
// New validates the Config. Start binds UDP and TCP on the same IP:PORT
// (port 0 picks a free port shared by both) and serves each transport from
// its own goroutine. Close(ctx) stops both listeners, lets queries in flight
// finish (bounded by ctx) and waits for every goroutine; it is safe to call
// twice. A Server cannot be restarted after Close.
//
// # Zones
//
// The server holds no zone data of its own. For every query it walks the
// question name from the longest suffix to the shortest
// (www.shop.example.test, shop.example.test, example.test, test) and asks
// the Source for each; the first hit is the zone's apex. The Source is
// called without any lock of this package held and must be cheap and safe
// for concurrent use. Name matching is case-insensitive; answers echo the
// case of the question.
//
// Each zone is minimal and synthesised from a Zone value:
//
//   - the apex has an A record (AAAA when Zone.IP is an IPv6 address) with
//     Zone.TTL, one NS record per distinct name server (TTL NSTTL) and a SOA
//     record (TTL SOATTL): mname is the first name server, rname
//     hostmaster.<apex>, the serial is Zone.Serial and the minimum (negative
//     caching TTL) is NegativeTTL;
//   - a name server whose name lies inside the zone (ns1.example.test) has
//     A/AAAA records for its addresses, and they are added as glue to the
//     NS answer;
//   - every other name inside the zone does not exist.
//
// # Answers
//
// Answers for managed zones carry the AA flag. A name that exists but has
// no record of the asked type gets NODATA (NOERROR, empty answer, SOA in
// the authority section); a name that does not exist gets NXDOMAIN with the
// SOA. Negative answers carry the SOA with a TTL of NegativeTTL, as RFC 2308
// asks. ANY at a name answers with a single RRset (RFC 8482): the address
// records, or the SOA at an apex without an address.
//
// The server never recurses: names under no managed apex, classes other
// than IN (and ANY) and zone transfers (AXFR, IXFR) are REFUSED. Queries that
// cannot be parsed, carry no or several questions, records in the answer
// section, several OPT records or a meta or reserved type or class in the
// question get FORMERR; opcodes other than QUERY get
// NOTIMP; EDNS versions other than 0 get BADVERS. Responses (QR set) are
// dropped.
//
// EDNS0 is honoured: a reply to a query with an OPT record carries one
// (advertising MaxUDPSize and echoing the DO bit). A UDP reply is limited to
// the client's buffer size (512 bytes without EDNS0, at most MaxUDPSize);
// a larger one is cut down and gets the TC flag, so the client retries over
// TCP, where the whole answer is sent.
package builtindns
