// Package cftest is an in-process stand-in for the Cloudflare API v4, for
// tests and benchmarks that drive the cloudflare provider (and through it
// cloudflare-go) without reaching the real service.
//
// New starts an httptest server that speaks the shapes of the real API: the
// JSON envelope {"success","errors","messages","result","result_info"}, the
// error envelopes and codes Cloudflare answers with, bearer-token
// authentication and pagination. It serves only what DNS failover needs:
//
//	GET    /client/v4/zones                       (filters: name, status; page, per_page)
//	GET    /client/v4/zones/{zone}
//	GET    /client/v4/zones/{zone}/dns_records    (filters: type, name, content, proxied; page, per_page)
//	POST   /client/v4/zones/{zone}/dns_records
//	GET    /client/v4/zones/{zone}/dns_records/{record}
//	PATCH  /client/v4/zones/{zone}/dns_records/{record}
//	PUT    /client/v4/zones/{zone}/dns_records/{record}
//	DELETE /client/v4/zones/{zone}/dns_records/{record}
//
// Zones and records are seeded with AddZone and AddRecord and inspected
// with Record and Records. FailNext and SetDelay inject faults: error
// statuses with the bodies Cloudflare sends (a JSON envelope and a
// Retry-After header for 429, JSON for 500, an HTML page for 502, 503 and
// 504) and slow answers. Every request is recorded, so a test can assert how
// many calls reached the API (Requests, Count).
//
// A Server is safe for concurrent use.
package cftest
