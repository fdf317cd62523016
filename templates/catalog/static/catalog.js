// Sigma rule catalog: filtering and sorting on the index page, copy buttons on rule pages.
// Plain script, no libraries; the data is in the page, so it works from the file system.
(function () {
  "use strict";

  function params() {
    // Filters come from the hash (written back on every change) or the query string.
    var text = (location.hash || "").replace(/^#/, "") || (location.search || "").replace(/^\?/, "");
    var out = {};
    text.split("&").forEach(function (pair) {
      if (!pair) return;
      var i = pair.indexOf("=");
      var key = decodeURIComponent(i < 0 ? pair : pair.slice(0, i));
      out[key] = i < 0 ? "" : decodeURIComponent(pair.slice(i + 1).replace(/\+/g, " "));
    });
    return out;
  }

  var LEVELS = ["critical", "high", "medium", "low", "informational", ""];
  var STATUSES = ["stable", "test", "experimental", "deprecated", "unsupported", ""];

  function rank(list, value) {
    var i = list.indexOf(value);
    return i < 0 ? list.length - 1 : i;
  }

  // Sort keys: a row's value for a column, compared as numbers or as text.
  var SORT_KEYS = {
    title: function (d) { return d.title; },
    level: function (d) { return rank(LEVELS, d.level); },
    status: function (d) { return rank(STATUSES, d.status); },
    logsource: function (d) { return d.logsource; },
    queries: function (d) { return -Number(d.queries); }
  };

  function setupIndex(table) {
    var ids = ["q", "level", "status", "tactic", "logsource", "event"];
    var fields = {};
    ids.forEach(function (id) { fields[id] = document.getElementById(id); });
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var shown = document.getElementById("shown");
    var none = document.getElementById("none");
    var buttons = Array.prototype.slice.call(table.querySelectorAll("button.sort"));
    var sort = "title";
    var given = params();
    ids.forEach(function (id) { if (given[id] !== undefined) fields[id].value = given[id]; });
    if (given.sort && SORT_KEYS[given.sort.replace(/^-/, "")]) sort = given.sort;

    function order() {
      var key = sort.replace(/^-/, ""), sign = sort.charAt(0) === "-" ? -1 : 1, get = SORT_KEYS[key];
      var sorted = rows.slice().sort(function (a, b) {
        var x = get(a.dataset), y = get(b.dataset);
        if (x < y) return -sign;
        if (x > y) return sign;
        return a.dataset.title < b.dataset.title ? -1 : a.dataset.title > b.dataset.title ? 1 : 0;
      });
      sorted.forEach(function (row) { body.appendChild(row); });
      buttons.forEach(function (b) {
        var th = b.parentNode;
        if (b.getAttribute("data-sort") === key) th.setAttribute("aria-sort", sign > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
    }

    function apply() {
      var words = fields.q.value.toLowerCase().split(/\s+/).filter(Boolean);
      var level = fields.level.value, status = fields.status.value, tactic = fields.tactic.value;
      var logsource = fields.logsource.value;
      var event = fields.event.value.trim().toLowerCase();
      var count = 0;
      rows.forEach(function (row) {
        var d = row.dataset;
        var ok = (!level || d.level === level) && (!status || d.status === status) &&
          (!tactic || (" " + d.tactics + " ").indexOf(" " + tactic + " ") >= 0) &&
          (!logsource || d.logsource === logsource) &&
          (!event || d.events.split("|").some(function (e) {
            return e === event || e.split(" ").slice(1).join(" ") === event; })) &&
          words.every(function (w) { return d.search.indexOf(w) >= 0; });
        row.hidden = !ok;
        if (ok) count++;
      });
      shown.textContent = count;
      none.hidden = count > 0;
      var state = ids.filter(function (id) { return fields[id].value; })
        .map(function (id) { return id + "=" + encodeURIComponent(fields[id].value); });
      if (sort !== "title") state.push("sort=" + encodeURIComponent(sort));
      state = state.join("&");
      if (("#" + state) !== location.hash && !(state === "" && location.hash === "")) {
        try { history.replaceState(null, "", state ? "#" + state : location.pathname); }
        catch (e) { /* some browsers refuse replaceState on file: URLs; the filter still works */ }
      }
    }
    ids.forEach(function (id) {
      fields[id].addEventListener("input", apply);
      fields[id].addEventListener("change", apply);
    });
    buttons.forEach(function (b) {
      b.addEventListener("click", function () {
        var key = b.getAttribute("data-sort");
        sort = sort === key ? "-" + key : key;
        order();
        apply();
      });
    });
    window.addEventListener("hashchange", function () {
      var p = params();
      ids.forEach(function (id) { fields[id].value = p[id] || ""; });
      sort = p.sort && SORT_KEYS[p.sort.replace(/^-/, "")] ? p.sort : "title";
      order();
      apply();
    });
    order();
    apply();
  }

  function copyText(text, done) {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  function setupCopy() {
    document.querySelectorAll("button.copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var code = document.getElementById(button.getAttribute("data-copy"));
        copyText(code.textContent, function () {
          button.textContent = "Copied";
          button.classList.add("done");
          setTimeout(function () { button.textContent = "Copy"; button.classList.remove("done"); }, 1500);
        });
      });
    });
  }

  var table = document.getElementById("rules");
  if (table) setupIndex(table);
  setupCopy();
})();
