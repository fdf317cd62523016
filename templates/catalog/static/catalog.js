// Sigma rule catalog: filtering on the index page and copy buttons on rule pages.
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

  function setupIndex(table) {
    var ids = ["q", "level", "tactic", "logsource", "event"];
    var fields = {};
    ids.forEach(function (id) { fields[id] = document.getElementById(id); });
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var shown = document.getElementById("shown");
    var none = document.getElementById("none");
    var given = params();
    ids.forEach(function (id) { if (given[id] !== undefined) fields[id].value = given[id]; });

    function apply() {
      var words = fields.q.value.toLowerCase().split(/\s+/).filter(Boolean);
      var level = fields.level.value, tactic = fields.tactic.value, logsource = fields.logsource.value;
      var event = fields.event.value.trim().toLowerCase();
      var count = 0;
      rows.forEach(function (row) {
        var d = row.dataset;
        var ok = (!level || d.level === level) &&
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
        .map(function (id) { return id + "=" + encodeURIComponent(fields[id].value); }).join("&");
      if (("#" + state) !== location.hash && !(state === "" && location.hash === "")) {
        try { history.replaceState(null, "", state ? "#" + state : location.pathname); }
        catch (e) { /* some browsers refuse replaceState on file: URLs; the filter still works */ }
      }
    }
    ids.forEach(function (id) {
      fields[id].addEventListener("input", apply);
      fields[id].addEventListener("change", apply);
    });
    window.addEventListener("hashchange", function () {
      var p = params();
      ids.forEach(function (id) { fields[id].value = p[id] || ""; });
      apply();
    });
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
