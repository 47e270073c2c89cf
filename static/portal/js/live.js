// Live cluster pages: connection state, polling fallback, freshness, and small comforts.
// The pages work without this file (plain forms, reload to refresh); it only adds comfort.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var OFFLINE_GRACE_MS = 3000;
  // Reconnecting: htmx's ws extension waits a random delay that doubles with every failed
  // attempt up to 64 s, so pages came back up to a minute after the server did. Here the
  // delay grows from 0.5-1 s to at most 2-4 s ("equal jitter": half fixed, half random, so
  // thousands of pages do not all come back at the same instant). The server sends the
  // current state on every connect, so a page catches up with its first message.
  var RECONNECT_BASE_MS = 500;
  var RECONNECT_CAP_MS = 4000;
  function reconnectDelay(retryCount) {
    var ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * Math.pow(2, (retryCount || 0) + 1));
    return ceiling / 2 + Math.random() * ceiling / 2;
  }
  if (window.htmx) { window.htmx.config.wsReconnectDelay = reconnectDelay; }

  function text(el, key, values) {
    var t = (el && el.getAttribute("data-text-" + key)) || "";
    Object.keys(values || {}).forEach(function (k) { t = t.replace("%(" + k + ")s", values[k]); });
    return t;
  }

  // ------------------------------------------------------------------ one live region per page
  function Live(root) {
    this.root = root;
    this.status = document.querySelector("[data-live-status]");
    this.connected = false;
    this.receivedAt = Date.now();
    this.offlineSince = Date.now();
    this.pollTimer = null;
    this.stopped = false;
    var self = this;
    root.addEventListener("htmx:wsConnecting", function () { self.show("connecting"); });
    root.addEventListener("htmx:wsOpen", function () {
      self.connected = true; self.offlineSince = null; self.show("live");
    });
    root.addEventListener("htmx:wsClose", function (e) {
      self.connected = false;
      self.offlineSince = self.offlineSince || Date.now();
      var code = e.detail && e.detail.event && e.detail.event.code;
      // 4403: the server refused this page's socket (signed out, removed from the tenant).
      if (code === 4403) { self.stopped = true; }
      self.show("polling");
    });
    root.addEventListener("htmx:wsError", function () {
      self.connected = false; self.offlineSince = self.offlineSince || Date.now(); self.show("polling");
    });
    root.addEventListener("htmx:wsAfterMessage", function () { self.touch(); });
    this.pollTimer = setInterval(function () { self.maybePoll(); }, POLL_MS);
    // A browser without WebSocket support, or a proxy that blocks them: say so and poll.
    if (!("WebSocket" in window)) { this.show("polling"); }
  }
  Live.prototype.touch = function () { this.receivedAt = Date.now(); this.renderAge(); };
  Live.prototype.show = function (state) {
    if (!this.status) { return; }
    var dot = this.status.querySelector("[data-live-dot]");
    var label = this.status.querySelector("[data-live-text]");
    this.status.classList.toggle("offline", state === "polling");
    this.status.setAttribute("data-state", state);
    if (dot) {
      dot.className = "status-dot " + (state === "live" ? "status-running" :
        state === "polling" ? "status-failed" : "status-progress");
    }
    if (label) { label.textContent = text(this.status, state); }
  };
  Live.prototype.renderAge = function () {
    if (!this.status) { return; }
    var age = this.status.querySelector("[data-live-age]");
    if (age) {
      age.textContent = text(this.status, "updated", {s: Math.round((Date.now() - this.receivedAt) / 1000)});
    }
  };
  Live.prototype.maybePoll = function () {
    if (this.connected || this.stopped || !document.body.contains(this.root)) { return; }
    if (this.offlineSince && Date.now() - this.offlineSince < OFFLINE_GRACE_MS) { return; }
    var url = this.root.getAttribute("data-poll-url");
    if (!url || !window.htmx) { return; }
    this.show("polling");
    var self = this;
    window.htmx.ajax("GET", url, {source: this.root, swap: "none"}).then(function () { self.touch(); });
  };

  var lives = [];
  function startLive(scope) {
    (scope || document).querySelectorAll("[data-live]").forEach(function (root) {
      if (root.__live) { return; }
      root.__live = new Live(root);
      lives.push(root.__live);
    });
  }
  window.portalLive = {
    get connected() { return lives.some(function (l) { return l.connected; }); },
    reconnectDelay: reconnectDelay
  };

  // ------------------------------------------------------------------ per-second tickers
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  var relative = (window.Intl && Intl.RelativeTimeFormat) ?
    new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, {numeric: "auto"}) : null;
  // Rows are cached as they are (no "3 minutes ago" baked in): the browser says how long ago.
  function relativeTimes() {
    if (!relative) { return; }
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      var s = Math.round((at - Date.now()) / 1000), abs = Math.abs(s);
      el.textContent = abs < 45 ? relative.format(0, "second") :
        abs < 3600 ? relative.format(Math.round(s / 60), "minute") :
        abs < 86400 ? relative.format(Math.round(s / 3600), "hour") :
        relative.format(Math.round(s / 86400), "day");
    });
  }
  function tick() {
    relativeTimes();
    lives.forEach(function (l) { l.renderAge(); });
    document.querySelectorAll("[data-elapsed-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-elapsed-since"));
      if (isNaN(since)) { return; }
      var s = Math.max(0, Math.round((Date.now() - since) / 1000));
      var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
      el.textContent = (h ? h + ":" + pad(m) : m) + ":" + pad(s % 60);
    });
  }

  // ------------------------------------------------------------------ swaps that respect the reader
  var openDetails = {};
  var pendingActions = null;

  function userIsWorkingIn(target) {
    var active = document.activeElement;
    if (active && target.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) { return true; }
    return !!target.querySelector("[data-dirty], [data-testid^='confirm-']");
  }

  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var target = e.detail.target;
    if (!target || !target.id) { return; }
    // Pushes from different processes may cross: never replace newer state by older.
    var first = e.detail.fragment && e.detail.fragment.firstElementChild;
    var stamp = first && first.getAttribute("data-stamp");
    var current = target.getAttribute("data-stamp");
    if (stamp && current && Number(stamp) < Number(current)) {
      e.detail.shouldSwap = false;
      return;
    }
    // A region that holds rows (the list, from a snapshot or a poll): a row the page already
    // shows at a newer revision stays as it is.
    if (first) { keepNewerRows(first); }
    openDetails[target.id] = Array.prototype.map.call(
      target.querySelectorAll("details[open][id]"), function (d) { return d.id; });
    if (target.hasAttribute("data-live-key")) {
      var incoming = e.detail.fragment && e.detail.fragment.firstElementChild;
      var key = incoming && incoming.getAttribute("data-live-key");
      if (key && key === target.getAttribute("data-live-key")) {
        e.detail.shouldSwap = false;  // nothing in the forms would change
      } else if (incoming && userIsWorkingIn(target)) {
        e.detail.shouldSwap = false;  // never wipe what someone is typing or confirming
        pendingActions = {target: target, html: incoming.outerHTML};
        var note = target.querySelector("[data-stale-note]");
        if (!note) {
          note = document.createElement("div");
          note.setAttribute("data-stale-note", "");
          note.className = "alert alert-info small";
          note.textContent = target.getAttribute("data-stale-text") || "The cluster changed; these forms refresh when you are done.";
          target.insertBefore(note, target.firstChild);
        }
      }
    }
  });
  function keepNewerRows(incoming) {
    incoming.querySelectorAll("[data-stamp][id]").forEach(function (row) {
      var shown = document.getElementById(row.id);
      if (shown && Number(shown.getAttribute("data-stamp")) > Number(row.getAttribute("data-stamp"))) {
        row.replaceWith(shown.cloneNode(true));
      }
    });
  }

  document.addEventListener("htmx:oobAfterSwap", function (e) {
    var el = e.detail.target;
    if (!el) { return; }
    var fresh = el.id && document.getElementById(el.id);
    (openDetails[el.id] || []).forEach(function (id) {
      var d = document.getElementById(id);
      if (d) { d.open = true; }
    });
    if (fresh) { markInvalid(fresh); highlightNew(fresh); }
  });
  document.addEventListener("focusout", function (e) {
    if (!pendingActions) { return; }
    var target = document.getElementById(pendingActions.target.id);
    if (!target || (e.relatedTarget && target.contains(e.relatedTarget))) { return; }
    setTimeout(function () {
      if (!pendingActions || userIsWorkingIn(target)) { return; }
      var html = pendingActions.html;
      pendingActions = null;
      window.htmx.swap(target, html, {swapStyle: "outerHTML"});
    }, 50);
  });
  document.addEventListener("input", function (e) {
    var form = e.target.closest && e.target.closest("#cluster-actions form");
    if (form) { form.setAttribute("data-dirty", ""); }
  });

  // Error containers are swapped on their own; the input beside them follows.
  function markInvalid(el) {
    if (!el.classList || !el.classList.contains("field-errors")) { return; }
    var input = document.querySelector("[aria-describedby='" + el.id + "']");
    if (input) { input.classList.toggle("is-invalid", el.children.length > 0); }
  }

  var seenEvents = null;
  function highlightNew(el) {
    if (el.id !== "cluster-timeline") { return; }
    var ids = Array.prototype.map.call(el.querySelectorAll("li[id]"), function (li) { return li.id; });
    if (seenEvents) {
      ids.forEach(function (id) { if (!seenEvents[id]) { document.getElementById(id).classList.add("timeline-new"); } });
    }
    seenEvents = {};
    ids.forEach(function (id) { seenEvents[id] = true; });
  }

  // ------------------------------------------------------------------ forms
  // Validate as you type (the create form, data-check-as-you-type): a change is checked at
  // once, typing once it pauses (the form's hx-trigger); inputs that only filter a list
  // (data-no-check) are not checked. Every check names the field that caused it ("_field"), so
  // a required field's error waits until the person reaches it. Done here rather than with
  // htmx's trigger filters and js: values, which the Content-Security-Policy cannot allow
  // (htmx evaluates them as code).
  function checkAsYouType(e, eventName) {
    var form = e.target.closest && e.target.closest("form[data-check-as-you-type]");
    if (!form || e.target.hasAttribute("data-no-check") || !window.htmx) { return; }
    window.htmx.trigger(form, eventName, {field: e.target.name || ""});
  }
  document.addEventListener("change", function (e) { checkAsYouType(e, "field-changed"); });
  document.addEventListener("input", function (e) { checkAsYouType(e, "field-typed"); });
  document.addEventListener("htmx:configRequest", function (e) {
    var elt = e.detail.elt;
    if (!elt.closest || !elt.closest("form[data-check-as-you-type]")) { return; }
    // A field's change or typing (above), or a button of the form (add or remove a group).
    var cause = e.detail.triggeringEvent;
    var field = cause && cause.detail && typeof cause.detail === "object" ? cause.detail.field :
      cause && cause.target && cause.target.name;
    e.detail.parameters._field = field || "";
  });

  function filterInstanceTypes(picker) {
    var vcpu = parseFloat((picker.querySelector("[data-filter=vcpu]") || {}).value) || 0;
    var mem = parseFloat((picker.querySelector("[data-filter=mem]") || {}).value) || 0;
    var dedicated = (picker.querySelector("[data-filter=dedicated]") || {}).checked;
    var hugepages = (picker.querySelector("[data-filter=hugepages]") || {}).checked;
    picker.querySelectorAll("select option[data-vcpu]").forEach(function (o) {
      var ok = parseFloat(o.getAttribute("data-vcpu")) >= vcpu && parseFloat(o.getAttribute("data-mem")) >= mem &&
        (!dedicated || o.hasAttribute("data-dedicated")) && (!hugepages || o.hasAttribute("data-hugepages"));
      o.hidden = !ok && !o.selected;
      o.disabled = !ok && !o.selected;
    });
  }
  document.addEventListener("input", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-filter")) {
      filterInstanceTypes(e.target.closest("[data-instance-picker]"));
    }
  });
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    source.select();
    var done = function () { button.textContent = button.getAttribute("data-copied-text") || "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done);
    } else if (document.execCommand("copy")) { done(); }
  });

  function start() {
    startLive(document);
    document.querySelectorAll(".field-errors").forEach(markInvalid);
    var timeline = document.getElementById("cluster-timeline");
    if (timeline) { highlightNew(timeline); }
    setInterval(tick, 1000);
    tick();
  }
  document.addEventListener("DOMContentLoaded", start);
  // A region swapped in by htmx (filters on the list page) may bring a new live root.
  document.addEventListener("htmx:afterSettle", function (e) { startLive(e.target.parentNode || document); });
})();
