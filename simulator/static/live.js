/* clever-sim: live gradebook cells. The page works without this script.
 * Server-sent events from data-events-url; if they are unavailable, polls the JSON
 * snapshot (data-snapshot-url). Partner text is only ever set with textContent. */
(function () {
  "use strict";
  var table = document.getElementById("gradebook");
  if (!table) { return; }
  var status = document.getElementById("gb-live-status");
  var eventsUrl = table.getAttribute("data-events-url");
  var snapshotUrl = table.getAttribute("data-snapshot-url");
  var seq = table.getAttribute("data-seq") || "0";
  var cells = {};
  var polling = null;
  var POLL_MS = 5000;

  // Cells are keyed by the row's data-user and the column header's data-link.
  var links = Array.prototype.map.call(table.querySelectorAll("thead th.gb-col"), function (th) {
    return th.getAttribute("data-link");
  });
  Array.prototype.forEach.call(table.querySelectorAll("tbody tr[data-user]"), function (tr) {
    var user = tr.getAttribute("data-user");
    Array.prototype.forEach.call(tr.querySelectorAll("td.gb-cell"), function (td, i) {
      if (i < links.length) { cells[user + "\u0000" + links[i]] = td; }
    });
  });

  function say(text) { if (status) { status.textContent = text; } }

  function setText(td, cls, text) {
    var el = td.querySelector("." + cls);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function sameOrigin(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/";
  }

  function apply(ev) {
    if (!ev || !ev.link_id) {
      if (ev && ev.grade_id) { say("A grade for an assignment not linked in this section arrived — reload to see it under “Not linked yet”."); }
      return;
    }
    var td = cells[ev.user_id + "\u0000" + ev.link_id];
    if (!td) { say("A grade arrived for a cell not on this page — reload to see it."); return; }
    var c = ev.cell || {};
    var link = td.querySelector(".gb-points");
    if (link) {
      link.textContent = c.points || "—";
      if (sameOrigin(ev.detail_url)) { link.setAttribute("href", ev.detail_url); }
    }
    setText(td, "gb-max", c.max_points ? " / " + c.max_points : "");
    setText(td, "gb-pct", c.percent || "");
    setText(td, "gb-letter", c.letter || "");
    var flags = (c.flags || []).join("; ");
    setText(td, "gb-flags", flags ? "\u2691 " + flags : "");
    td.classList.toggle("gb-flagged", !!flags);
    if (c.title) { td.setAttribute("title", c.title); }
    if (ev.seq) { td.setAttribute("data-seq", String(ev.seq)); }
    td.classList.remove("gb-flash");
    void td.offsetWidth; // restart the highlight animation
    td.classList.add("gb-flash");
  }

  function fromSnapshot(doc) {
    (doc.cells || []).forEach(function (cell) {
      var td = cells[cell.user_id + "\u0000" + cell.link_id];
      if (!td || !cell.display) { return; }
      var seen = Number(td.getAttribute("data-seq") || seq);
      if (Number(cell.seq) > seen) {
        apply({ user_id: cell.user_id, link_id: cell.link_id, grade_id: cell.grade_id,
                seq: cell.seq, detail_url: cell.detail_url, cell: cell.display });
      }
    });
  }

  function poll() {
    if (!window.fetch || !snapshotUrl) { say("Reload the page to see new grades."); return; }
    say("Live updates: checking every " + POLL_MS / 1000 + " s.");
    var run = function () {
      fetch(snapshotUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) { if (doc) { fromSnapshot(doc); } })
        .catch(function () { say("Live updates paused (server unreachable); retrying."); });
    };
    run();
    polling = window.setInterval(run, POLL_MS);
  }

  if (!window.EventSource || !eventsUrl) { poll(); return; }
  var source = new EventSource(eventsUrl + (eventsUrl.indexOf("?") < 0 ? "?" : "&") + "after_seq=" + encodeURIComponent(seq));
  source.addEventListener("open", function () { say("Live updates: on."); });
  source.addEventListener("grade", function (e) {
    try { apply(JSON.parse(e.data)); } catch (err) { /* ignore a malformed event */ }
  });
  source.addEventListener("layout", function (e) {
    var reason = "the gradebook changed";
    try { reason = JSON.parse(e.data).reason || reason; } catch (err) { /* keep default */ }
    say("Reload the page: " + reason + ".");
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {   // refused (e.g. too many streams): poll
      source.close();
      if (!polling) { poll(); }
    } else {
      say("Live updates: reconnecting…");
    }
  });
}());
