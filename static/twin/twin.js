// Live updates: websocket events become DOM events on <body>; htmx elements listen for them
// (hx-trigger="twin:inbox from:body") and fetch the partial they show. No framework.
(function () {
  "use strict";
  var INBOX_EVENTS = ["run.awaiting_approval", "run.resumed", "run.rejected", "run.cancelled",
    "run.expired", "run.failed", "run.completed", "approval.decided", "approval.given"];
  // How often each kind of page fragment may refetch, in ms.
  var PACE = { "twin:inbox": 300, "twin:run": 1000 };
  var RUN_PACE = 150;

  function emit(name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  // At most one refetch per pace, and never a lost last one: htmx's own `throttle:` drops the
  // events of the window, so a run finishing right after a step would leave its page stale.
  var timers = {};
  var again = {};
  var heard = {}; // how many events each name has heard
  function paceOf(name) { return PACE[name] || RUN_PACE; } // (twin:run-<id>: one run's page)
  function refresh(name, detail) {
    var pace = paceOf(name);
    heard[name] = (heard[name] || 0) + 1;
    if (timers[name]) { again[name] = detail || {}; return; }
    emit(name, detail);
    timers[name] = setTimeout(function tick() {
      if (again[name]) {
        var next = again[name];
        delete again[name];
        emit(name, next);
        timers[name] = setTimeout(tick, pace);
      } else {
        delete timers[name];
      }
    }, pace);
  }

  // A fragment's answer may predate an event heard while its request was out (the event is
  // sent once committed, the answer may have been read before), and htmx does not listen on a
  // fragment it swapped in until it has settled, so an event heard meanwhile is lost. Either way
  // the fragment asks once more after it settles: no change that reached this page stays unseen.
  var LIVE_TRIGGER = /(twin:[\w-]+) from:body/g;
  function liveNames(elt) {
    var names = [];
    var trigger = (elt && elt.getAttribute && elt.getAttribute("hx-trigger")) || "";
    var match;
    LIVE_TRIGGER.lastIndex = 0;
    while ((match = LIVE_TRIGGER.exec(trigger)) !== null) names.push(match[1]);
    return names;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var sent = {};
    liveNames(event.detail.target).forEach(function (name) { sent[name] = heard[name] || 0; });
    event.detail.requestConfig.twinHeard = sent;
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var config = event.detail.requestConfig;
    var sent = config && config.twinHeard;
    if (!sent) return;
    config.twinHeard = null; // once per answer (it settles once per element it swapped in)
    Object.keys(sent).forEach(function (name) {
      if ((heard[name] || 0) > sent[name]) refresh(name, {});
    });
  });

  // body[data-live] is "on" while every socket of the page is open (tests and CSS read it).
  var sockets = [];
  function showLive() {
    var on = sockets.length > 0 && sockets.every(function (s) { return s.open; });
    document.body.dataset.live = on ? "on" : "off";
  }

  function connect(path, onMessage, onOpen) {
    var delay = 500;
    var state = { open: false };
    sockets.push(state);
    function open() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + path);
      socket.onopen = function () {
        delay = 500;
        state.open = true;
        showLive();
        emit("twin:connected", { path: path });
        // Whatever happened between rendering the page (or losing the socket) and now was not
        // heard: fetch the fragments once.
        onOpen();
      };
      socket.onmessage = function (message) {
        var msg;
        try { msg = JSON.parse(message.data); } catch (e) { return; /* not ours */ }
        onMessage(msg);
      };
      socket.onclose = function (event) {
        state.open = false;
        showLive();
        if (event.code === 4403) return; // not allowed: do not hammer the server
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.body;
    if (body.dataset.eventsUrl) {
      connect(body.dataset.eventsUrl, function (msg) {
        refresh("twin:run", msg);
        if (INBOX_EVENTS.indexOf(msg.event) !== -1) refresh("twin:inbox", msg);
      }, function () {
        refresh("twin:run", {});
        refresh("twin:inbox", {});
      });
    }
    var run = document.querySelector("[data-run-events-url]");
    if (run) {
      var runId = run.dataset.runId;
      connect(run.dataset.runEventsUrl, function (msg) {
        window.twinLastRunEvent = { at: performance.now(), msg: msg };
        refresh("twin:run-" + msg.run_id, msg);
      }, function () {
        if (runId) refresh("twin:run-" + runId, {});
      });
    }
    showLive();

    // A failed htmx request must not look like nothing happened.
    function notify(text) {
      var notices = document.getElementById("notices");
      if (!notices) return;
      var p = document.createElement("p");
      p.className = "notice notice-error";
      p.textContent = text;
      var dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "dismiss";
      dismiss.setAttribute("aria-label", "Dismiss");
      dismiss.textContent = "×";
      p.appendChild(dismiss);
      notices.insertBefore(p, notices.firstChild);
      setTimeout(function () { p.remove(); }, 8000);
    }
    body.addEventListener("htmx:responseError", function (event) {
      var status = event.detail.xhr.status;
      notify(status === 403 ? "Not allowed: your role does not permit this." :
        "Something went wrong (" + status + "). Please try again.");
    });
    body.addEventListener("htmx:sendError", function () {
      notify("The server could not be reached. Check your connection and try again.");
    });
    // A notice's dismiss button (no inline onclick: the Content Security Policy refuses it).
    // The focus goes to the next notice's button, or back to the page, rather than to <body>.
    body.addEventListener("click", function (event) {
      var button = event.target.closest(".notice .dismiss");
      if (!button) return;
      var notice = button.parentElement;
      var hadFocus = document.activeElement === button;
      var next = notice.nextElementSibling || notice.previousElementSibling;
      notice.remove();
      if (!hadFocus) return;
      var nextButton = next && next.querySelector(".dismiss");
      if (nextButton) nextButton.focus(); else document.getElementById("main").focus();
    });

    // A new notice replaces the older ones about the same run (a "still waiting" error must not
    // outlive the accepted code): the key is data-key, else the run the notice links to, else its text.
    function noticeKey(notice) {
      if (notice.dataset.key) return notice.dataset.key;
      var link = notice.querySelector('a[href*="/runs/"]');
      var match = link && /\/runs\/([^/]+)\//.exec(link.getAttribute("href"));
      return match ? "run:" + match[1] : "text:" + notice.textContent.trim();
    }
    var notices = document.getElementById("notices");
    if (notices) {
      new MutationObserver(function (changes) {
        changes.forEach(function (change) {
          Array.prototype.forEach.call(change.addedNodes, function (added) {
            if (!(added instanceof HTMLElement) || !added.classList.contains("notice") || !added.parentNode) return;
            var key = noticeKey(added);
            Array.prototype.forEach.call(notices.querySelectorAll(".notice"), function (other) {
              if (other !== added && noticeKey(other) === key) other.remove();
            });
          });
        });
      }).observe(notices, { childList: true });
    }

    // The phone's navigation: one row (brand, inbox count, Menu); the button unfolds the rest.
    var nav = document.getElementById("nav");
    var menu = document.getElementById("nav-menu");
    if (nav && menu) {
      menu.hidden = false;
      nav.classList.add("foldable");
      var setOpen = function (open) {
        nav.classList.toggle("open", open);
        menu.setAttribute("aria-expanded", open ? "true" : "false");
      };
      menu.addEventListener("click", function () { setOpen(!nav.classList.contains("open")); });
      nav.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && nav.classList.contains("open")) { setOpen(false); menu.focus(); }
      });
    }
  });
})();
