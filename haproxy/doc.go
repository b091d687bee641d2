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
//
// Every rendered configuration also holds empty spare backends, a fixed
// number per mode (SpareBackends). A new site is served from one of them
// without a reload: its section is checked with `haproxy -c` (on the
// unchanged Base and that section only), its origins are added to the spare
// backend through the runtime API as health-checked servers, its map entry
// names the spare backend in the running worker, and its own section is
// appended to the configuration file on disk, which the next reload or
// start loads (the spare backends are then empty again). Changes of an
// existing site's backend, changes of Base, and more new sites than free
// spare backends reload.
//
// Why: a reload costs HAProxy time in proportion to the whole
// configuration, however small the change. On a 2-core machine at 10,000
// sites (15,000 health-checked servers) the new master spends about 120 ms
// parsing, 25 ms checking and 130 to 250 ms building the Lua objects of
// every backend and server (done even when no Lua is loaded), then forks
// the new worker: 350 to 450 ms before the new worker answers, more when
// other processes compete for the CPU. Trimming per-backend keywords,
// moving them to defaults, dropping health checks or changing their timing
// changes none of these figures measurably. `haproxy -c` on the whole file
// takes another 150 ms, so when Base is unchanged only Base and the
// sections not checked yet are given to it (Manager.Apply).
//
// Measured with BenchmarkApply at 10,000 sites: adding a site takes 75-90
// ms in all (render 5-10 ms, `haproxy -c` of Base and the new section 35-40
// ms, runtime API 10-15 ms, files and state the rest); a change that needs
// a reload 450-510 ms (render 5 ms, `haproxy -c` of Base and the changed
// sections 40 ms, reload 390-450 ms); removing a site (map entry only)
// 30-50 ms.
package haproxy
