// Live updates: websocket events become DOM events on <body>; htmx elements listen for them
// (hx-trigger="twin:inbox from:body") and fetch the partial they show. No framework.
(function () {
  "use strict";
  var INBOX_EVENTS = ["run.awaiting_approval", "run.resumed", "run.rejected", "run.cancelled",
    "run.expired", "run.failed", "run.completed", "approval.decided"];

  function emit(name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  function connect(path, onMessage) {
    var delay = 500;
    function open() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + path);
      socket.onopen = function () { delay = 500; emit("twin:connected", { path: path }); };
      socket.onmessage = function (message) {
        try { onMessage(JSON.parse(message.data)); } catch (e) { /* not ours */ }
      };
      socket.onclose = function (event) {
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
        emit("twin:run", msg);
        if (INBOX_EVENTS.indexOf(msg.event) !== -1) emit("twin:inbox", msg);
      });
    }
    var run = document.querySelector("[data-run-events-url]");
    if (run) {
      connect(run.dataset.runEventsUrl, function (msg) {
        window.twinLastRunEvent = { at: performance.now(), msg: msg };
        emit("twin:run-" + msg.run_id, msg);
      });
    }
  });
})();
