// lumos dashboard: keeps an open page fresh. Every few seconds (while the
// tab is visible) it fetches the same URL and swaps the parts marked
// data-live; relative times ("12 s ago") tick every second in between.
(function () {
  "use strict";

  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh"), 10) || 5000;
  var live = document.getElementById("live");
  var skew = 0; // server clock minus this browser's clock, in ms
  var timer = null;
  var busy = false;
  var stopped = false;

  function syncClock(iso) {
    var t = Date.parse(iso);
    if (!isNaN(t)) {
      skew = t - Date.now();
    }
  }

  function span(sec) {
    if (sec < 60) return sec + " s";
    if (sec < 3600) return Math.floor(sec / 60) + " min";
    if (sec < 86400) {
      var h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60);
      return h + " h" + (m ? " " + m + " min" : "");
    }
    var d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600);
    return d + " d" + (hh ? " " + hh + " h" : "");
  }

  function rel(ms) {
    if (ms < 0) return "in " + span(Math.floor(-ms / 1000));
    if (ms < 1000) return "just now";
    return span(Math.floor(ms / 1000)) + " ago";
  }

  function tick() {
    var now = Date.now() + skew;
    var els = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < els.length; i++) {
      var t = Date.parse(els[i].getAttribute("datetime"));
      if (!isNaN(t)) {
        var text = rel(now - t);
        if (els[i].textContent !== text) els[i].textContent = text;
      }
    }
  }

  function setLive(state, text) {
    if (!live) return;
    live.setAttribute("data-state", state);
    live.textContent = text;
  }

  // A control the user is working with must not vanish under them.
  function interacting() {
    var a = document.activeElement;
    return a && a.tagName === "SELECT" && a.closest("[data-live]");
  }

  function swap(doc) {
    var parts = doc.querySelectorAll("[data-live]");
    for (var i = 0; i < parts.length; i++) {
      var name = parts[i].getAttribute("data-live");
      var cur = document.querySelector('[data-live="' + name + '"]');
      if (!cur) continue;
      // Keep the horizontal scroll of wide tables.
      var scrolls = [];
      var wraps = cur.querySelectorAll(".table-wrap");
      for (var j = 0; j < wraps.length; j++) scrolls.push(wraps[j].scrollLeft);
      var next = document.importNode(parts[i], true);
      cur.replaceWith(next);
      var nwraps = next.querySelectorAll(".table-wrap");
      for (var k = 0; k < nwraps.length && k < scrolls.length; k++) nwraps[k].scrollLeft = scrolls[k];
    }
    if (doc.title) document.title = doc.title;
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && !document.hidden) timer = setTimeout(refresh, every);
  }

  function refresh() {
    if (busy || stopped || document.hidden) return;
    if (interacting()) {
      schedule();
      return;
    }
    busy = true;
    fetch(location.href, { cache: "no-store", credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) {
          stopped = true;
          setLive("error", "signed out");
          return null;
        }
        if (!r.ok && r.status !== 404) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        syncClock(doc.body.getAttribute("data-now"));
        if (!interacting()) swap(doc);
        tick();
        setLive("live", "live");
      })
      .catch(function () {
        setLive("error", "reconnecting…");
      })
      .then(function () {
        busy = false;
        schedule();
      });
  }

  // Filters on the events page: choosing a value navigates, no form.
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (!el || el.tagName !== "SELECT" || !el.hasAttribute("data-nav")) return;
    var u = new URL(location.href);
    var key = el.getAttribute("data-nav");
    if (el.value) u.searchParams.set(key, el.value); else u.searchParams.delete(key);
    location.assign(u.toString());
  });

  document.addEventListener("visibilitychange", function () {
    if (stopped) return;
    if (document.hidden) {
      clearTimeout(timer);
      setLive("paused", "paused");
    } else {
      refresh();
    }
  });

  syncClock(body.getAttribute("data-now"));
  tick();
  setInterval(tick, 1000);
  if (document.hidden) {
    setLive("paused", "paused");
  } else {
    setLive("live", "live");
    schedule();
  }
})();
