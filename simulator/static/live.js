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

  var totals = {};
  Array.prototype.forEach.call(table.querySelectorAll("tbody tr[data-user]"), function (tr) {
    var t = tr.querySelector("td.gb-total");
    if (t) { totals[tr.getAttribute("data-user")] = t; }
  });
  var averages = {};
  Array.prototype.forEach.call(table.querySelectorAll("tfoot td.gb-average[data-link]"), function (t) {
    averages[t.getAttribute("data-link")] = t;
  });

  function say(text) { if (status) { status.textContent = text; } }

  function setText(td, cls, text) {
    var el = td.querySelector("." + cls);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function sameOrigin(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/";
  }

  // "Not linked yet": rows keyed by grade id, added or updated in place.
  var unlinked = document.getElementById("gb-unlinked");
  var unlinkedBody = unlinked ? unlinked.querySelector("tbody") : null;
  var unlinkedNone = document.getElementById("gb-unlinked-none");

  function td(text, code) {
    var cell = document.createElement("td");
    if (code) {
      var c = document.createElement("code");
      c.textContent = text;
      cell.appendChild(c);
    } else {
      cell.textContent = text;
    }
    return cell;
  }

  function notLinked(ev) {
    if (!unlinkedBody) { say("A grade for an assignment not linked in this section arrived — reload to see it."); return; }
    var c = ev.cell || {};
    var row = null;
    Array.prototype.forEach.call(unlinkedBody.querySelectorAll("tr[data-grade]"), function (tr) {
      if (tr.getAttribute("data-grade") === ev.grade_id) { row = tr; }
    });
    var fresh = document.createElement("tr");
    fresh.setAttribute("data-grade", ev.grade_id);
    fresh.appendChild(td(ev.assignment_id || "", true));
    fresh.appendChild(td(ev.student_name || ev.user_id || ""));
    fresh.appendChild(td(ev.app_name || ev.client_id || ""));
    var score = td("");
    var a = document.createElement("a");
    a.textContent = c.lti_score || "—";
    if (sameOrigin(ev.detail_url)) { a.setAttribute("href", ev.detail_url); }
    a.setAttribute("aria-label", "LTI " + (c.lti_score || "none") + ", " + (ev.student_name || ev.user_id || "") + ", " + (ev.assignment_id || ""));
    score.appendChild(a);
    fresh.appendChild(score);
    fresh.appendChild(td((c.percent || "") + (c.letter ? " (" + c.letter + ")" : "")));
    var flags = (c.flags || []).join("; ");
    fresh.appendChild(td((c.raw || "") + (flags ? " ⚑ " + flags : "")));
    fresh.appendChild(td(c.last_modified_text || c.last_modified || ""));
    if (row) { unlinkedBody.replaceChild(fresh, row); } else { unlinkedBody.appendChild(fresh); }
    unlinked.hidden = false;
    if (unlinkedNone) { unlinkedNone.hidden = true; }
    fresh.classList.add("gb-flash");
    say("A grade for an assignment not linked in this section arrived: see “Not linked yet”.");
  }

  function apply(ev) {
    if (!ev) { return; }
    if (!ev.link_id) {
      if (ev.grade_id) { notLinked(ev); }
      return;
    }
    var td = cells[ev.user_id + "\u0000" + ev.link_id];
    if (!td) { say("A grade arrived for a cell not on this page — reload to see it."); return; }
    var c = ev.cell || {};
    var link = td.querySelector(".gb-points");
    if (link) {
      link.textContent = c.shown || "—";
      if (sameOrigin(ev.detail_url)) { link.setAttribute("href", ev.detail_url); }
      var who = td.getAttribute("data-who");  // a link that says whose grade it is, not just "13"
      if (who) { link.setAttribute("aria-label", (c.shown || "—") + (c.after || "") + ", " + who); }
    }
    // what the column's grading type shows first, then the rest (points: " / max", %, letter)
    setText(td, "gb-max", c.after || "");
    setText(td, "gb-pct", c.percent_shown || "");
    setText(td, "gb-letter", c.letter_shown || "");
    var flags = (c.flags || []).join("; ");
    setText(td, "gb-flags", flags ? "\u2691 " + flags : "");
    td.classList.toggle("gb-flagged", !!flags);
    if (c.title) { td.setAttribute("title", c.title); }
    if (ev.seq) { td.setAttribute("data-seq", String(ev.seq)); }
    flash(td);
    if (ev.total) { total(ev.user_id, ev.total); }
    if (ev.average) { average(ev.link_id, ev.average); }
  }

  function flash(el) {
    el.classList.remove("gb-flash");
    void el.offsetWidth; // restart the highlight animation
    el.classList.add("gb-flash");
  }

  // The row's total and the column's class average, as the server computed them.
  function total(user, shown) {
    refresh(totals[user], shown && { "gb-total-points": shown.points, "gb-total-pct": shown.percent });
  }

  function average(link, shown) {
    refresh(averages[link], shown && { "gb-avg-pct": shown.percent, "gb-avg-n": shown.graded });
  }

  function refresh(td, parts) {  // parts: class of a span → its new text; highlight a change
    if (!td || !parts) { return; }
    var before = td.textContent;
    Object.keys(parts).forEach(function (cls) { setText(td, cls, parts[cls] || ""); });
    if (td.textContent !== before) { flash(td); }
  }

  function fromSnapshot(doc) {
    (doc.not_linked || []).forEach(function (cell) {
      if (Number(cell.seq) > Number(seq)) {
        notLinked({ grade_id: cell.grade_id, user_id: cell.user_id, assignment_id: cell.assignment_id,
                    client_id: cell.client_id, student_name: cell.student_name,
                    app_name: cell.app_name, detail_url: cell.detail_url, cell: cell.display });
      }
    });
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

  function pollDone(doc) {
    fromSnapshot(doc);
    (doc.totals || []).forEach(function (t) { total(t.user_id, t.shown); });
    (doc.averages || []).forEach(function (a) { average(a.link_id, a.shown); });
    if (doc.seq && Number(doc.seq) > Number(seq)) { seq = String(doc.seq); }
  }

  function stopPolling() {
    if (polling) { window.clearInterval(polling); polling = null; }
  }

  // Said when the server answers but will not give this tab grades any more: retrying
  // cannot help (e.g. the simulator restarted, which signs every tab out), a reload can.
  function refusedText(status) {
    if (status === 401 || status === 403) {
      return "Live updates stopped: this tab is no longer signed in as a teacher of this " +
             "section (logged out, or the simulator restarted). Reload the page.";
    }
    if (status === 404) { return "Live updates stopped: this section is gone. Reload the page."; }
    return "";
  }

  function poll() {
    if (!window.fetch || !snapshotUrl) { say("Reload the page to see new grades."); return; }
    var checking = "Live updates: checking every " + POLL_MS / 1000 + " s.";
    say(checking);
    var run = function () {
      fetch(snapshotUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) {
          var refused = refusedText(r.status);
          if (refused) { stopPolling(); say(refused); return null; }
          if (!r.ok) { say("Live updates paused (the simulator answered " + r.status + "); retrying."); return null; }
          return r.json();
        })
        .then(function (doc) { if (doc) { pollDone(doc); say(checking); } })
        .catch(function () { say("Live updates paused: the simulator is not answering (stopped?); retrying every " + POLL_MS / 1000 + " s."); });
    };
    run();
    polling = window.setInterval(run, POLL_MS);
  }

  if (!window.EventSource || !eventsUrl) { poll(); return; }
  var source = null;

  function connect() {
    source = new EventSource(eventsUrl + (eventsUrl.indexOf("?") < 0 ? "?" : "&") + "after_seq=" + encodeURIComponent(seq));
    var mine = source;
    mine.addEventListener("open", function () { say("Live updates: on."); });
    mine.addEventListener("grade", function (e) {
      try {
        var ev = JSON.parse(e.data);
        apply(ev);
        if (ev.seq && Number(ev.seq) > Number(seq)) { seq = String(ev.seq); }
      } catch (err) { /* ignore a malformed event */ }
    });
    mine.addEventListener("layout", function (e) {
      var reason = "the gradebook changed";
      try { reason = JSON.parse(e.data).reason || reason; } catch (err) { /* keep default */ }
      say("Reload the page: " + reason + ".");
    });
    var failures = 0;  // errors since the stream was last open
    mine.addEventListener("open", function () { failures = 0; });
    mine.addEventListener("error", function () {
      if (mine.readyState === EventSource.CLOSED) {   // refused (e.g. too many streams): poll
        mine.close();                                 // (the poll tells a sign-out apart)
        if (!polling && source === mine) { poll(); }
      } else {
        failures += 1;
        say(failures < 2 ? "Live updates: reconnecting…"
                         : "Live updates paused: the simulator is not answering (stopped?); retrying.");
      }
    });
  }

  // A page being left (closed, reloaded, navigated away or put in the back/forward cache)
  // gives its stream back at once: each open stream holds one of the server's few slots.
  window.addEventListener("pagehide", function () {
    if (source) { source.close(); source = null; }
    stopPolling();
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && !source && !polling) { connect(); }  // back from the cache: resume
  });
  connect();
}());
