// Package haproxy is what makes a shield a shield: it renders an HAProxy
// configuration for the domains assigned to the shield, validates it with
// `haproxy -c`, applies it atomically, runs and supervises HAProxy in
// master-worker mode, reloads it with zero downtime and rolls back a change
// HAProxy refuses, reads traffic statistics from the stats socket, and
// detects the sites of an HAProxy configuration found on the machine.
//
// Routing goes through map files — HTTP Host header to backend, TLS SNI to
// backend — so changes that only touch map entries are applied through the
// runtime API without a reload.
package haproxy
