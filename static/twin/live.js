// The live view: JPEG frames of the run's page drawn into a canvas, and, for an approver who
// takes a paused page over, clicks and keys sent back to it. No framework.
//
// The server streams only while this socket is open, and sends the next frame only once we
// have drawn enough of the previous ones (each "ack" says one frame is drawn): a slow or
// hidden tab slows the stream down instead of piling frames up.
(function () {
  "use strict";

  var MODIFIERS = { altKey: 1, ctrlKey: 2, metaKey: 4, shiftKey: 8 }; // CDP's bit mask
  var BUTTONS = ["left", "middle", "right"];
  var MOVE_EVERY_MS = 50;
  var TEXT_FLUSH_MS = 80;

  function modifiers(event) {
    var mask = 0;
    Object.keys(MODIFIERS).forEach(function (name) { if (event[name]) mask |= MODIFIERS[name]; });
    return mask;
  }

  function LiveView(root) {
    this.root = root;
    this.canvas = document.getElementById("live-canvas");
    this.context2d = this.canvas.getContext("2d");
    this.stateLine = document.getElementById("live-state");
    this.rateLine = document.getElementById("live-rate");
    this.badge = document.getElementById("live-run-status");
    this.screen = document.getElementById("live-screen");
    this.button = document.getElementById("live-takeover");
    this.escape = document.getElementById("live-escape");
    this.socket = null;
    this.delay = 500;
    this.meta = null;
    this.canTakeOver = false;
    this.takingOver = false;
    this.streaming = false;
    this.runStatus = "";
    this.heldAcks = 0;
    this.drawing = false;
    this.nextFrame = null;
    this.text = "";
    this.textTimer = null;
    this.lastMove = 0;
    this.wheel = null;
    this.keysDown = {};
    this.stats = { frames: 0, chars: 0, since: performance.now() };
    window.twinLive = this.stats; // tests and benchmarks read it
    this.bind();
    this.open();
    setInterval(this.showRate.bind(this), 1000);
  }

  LiveView.prototype.open = function () {
    var self = this;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + this.root.dataset.liveUrl);
    this.socket = socket;
    socket.onopen = function () { self.delay = 500; };
    socket.onmessage = function (message) {
      var msg;
      try { msg = JSON.parse(message.data); } catch (e) { return; }
      self.receive(msg);
    };
    socket.onclose = function (event) {
      self.streaming = false;
      self.setTakingOver(false);
      self.updateButton();
      if (event.code === 4403) {
        self.say("You cannot watch this run.");
        return;
      }
      self.say("Connection lost; reconnecting…");
      setTimeout(function () { self.open(); }, self.delay);
      self.delay = Math.min(self.delay * 2, 10000);
    };
  };

  LiveView.prototype.send = function (msg) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(msg));
  };

  LiveView.prototype.say = function (text) {
    if (this.stateLine.textContent !== text) this.stateLine.textContent = text;
  };

  LiveView.prototype.receive = function (msg) {
    if (msg.type === "frame") { this.frame(msg); return; }
    switch (msg.type) {
      case "hello":
        this.canTakeOver = !!msg.can_take_over;
        break;
      case "status":
        this.streaming = !!msg.streaming;
        this.setRunStatus(msg.run_status);
        this.say(msg.streaming ? this.describe() : msg.detail || "The page is not available.");
        this.screen.dataset.streaming = msg.streaming ? "on" : "off";
        break;
      case "takeover":
        this.setTakingOver(!!msg.on);
        this.say(msg.on ? "You are controlling the page. Press Esc to leave it with the keyboard."
          : "You handed the page back" + (msg.detail && msg.detail !== "handed back" ? " (" + msg.detail + ")" : "") + ".");
        if (msg.on) this.canvas.focus();
        break;
      case "run":
        this.setRunStatus(msg.run_status);
        if (!this.takingOver && this.streaming) this.say(this.describe());
        if (String(msg.event || "").indexOf("takeover.") !== 0) {
          document.body.dispatchEvent(new CustomEvent("twin:live-refresh", { detail: msg }));
        }
        break;
      case "error":
        this.say(msg.detail || "That did not work.");
        break;
    }
    this.updateButton();
  };

  LiveView.prototype.describe = function () {
    return this.runStatus === "awaiting_approval"
      ? "Live: the paused page, as the approver decides about it."
      : "Live: the run's page as it works.";
  };

  LiveView.prototype.setRunStatus = function (status) {
    if (!status || status === this.runStatus) return;
    this.runStatus = status;
    var badge = document.createElement("span");
    badge.className = "badge status-" + status;
    badge.textContent = status.replace(/_/g, " ");
    this.badge.replaceChildren(badge);
  };

  LiveView.prototype.updateButton = function () {
    if (!this.button) return;
    var possible = this.canTakeOver && this.streaming && this.runStatus === "awaiting_approval";
    this.button.disabled = !possible && !this.takingOver;
    this.button.textContent = this.takingOver ? "Stop taking over" : "Take over";
    this.button.setAttribute("aria-pressed", this.takingOver ? "true" : "false");
    if (this.escape) this.escape.hidden = !this.takingOver;
  };

  LiveView.prototype.setTakingOver = function (on) {
    this.takingOver = on;
    this.screen.dataset.takeover = on ? "on" : "off";
    this.canvas.setAttribute("aria-label", on ? "The run's page: your clicks and keys go to it" : "The run's page, live");
  };

  // -- frames ------------------------------------------------------------------------------------
  LiveView.prototype.frame = function (msg) {
    this.stats.frames += 1;
    this.stats.chars += msg.data.length;
    this.meta = msg.metadata || this.meta;
    if (this.drawing) {
      // Still decoding the previous one: draw only the newest, ack the skipped one at once.
      if (this.nextFrame) this.ack();
      this.nextFrame = msg;
      return;
    }
    this.draw(msg);
  };

  LiveView.prototype.draw = function (msg) {
    var self = this;
    var image = new Image();
    this.drawing = true;
    image.onload = image.onerror = function () {
      if (image.naturalWidth) {
        if (self.canvas.width !== image.naturalWidth || self.canvas.height !== image.naturalHeight) {
          self.canvas.width = image.naturalWidth;
          self.canvas.height = image.naturalHeight;
        }
        self.context2d.drawImage(image, 0, 0);
      }
      self.drawing = false;
      self.ack();
      var next = self.nextFrame;
      self.nextFrame = null;
      if (next) self.draw(next);
    };
    image.src = "data:image/jpeg;base64," + msg.data;
  };

  LiveView.prototype.ack = function () {
    // A hidden tab keeps its acks: the stream stops until someone looks again.
    if (document.hidden) { this.heldAcks += 1; return; }
    this.send({ type: "ack" });
  };

  LiveView.prototype.showRate = function () {
    var now = performance.now();
    var seconds = (now - this.stats.since) / 1000;
    if (seconds <= 0) return;
    var fps = this.stats.frames / seconds;
    var kib = (this.stats.chars * 3) / 4 / 1024 / seconds;
    this.rateLine.textContent = this.streaming ? fps.toFixed(0) + " fps · " + kib.toFixed(0) + " KiB/s" : "";
    this.stats.lastFps = fps;
    this.stats.lastKiBps = kib;
    this.stats.frames = 0;
    this.stats.chars = 0;
    this.stats.since = now;
  };

  // -- take over -----------------------------------------------------------------------------------
  LiveView.prototype.point = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    var meta = this.meta || { deviceWidth: this.canvas.width, deviceHeight: this.canvas.height };
    var x = ((event.clientX - rect.left) / rect.width) * meta.deviceWidth;
    var y = ((event.clientY - rect.top) / rect.height) * meta.deviceHeight;
    return { x: Math.max(0, Math.round(x * 10) / 10), y: Math.max(0, Math.round(y * 10) / 10) };
  };

  LiveView.prototype.mouse = function (type, event, extra) {
    var p = this.point(event);
    var msg = { type: "mouse", event: type, x: p.x, y: p.y, modifiers: modifiers(event) };
    Object.keys(extra || {}).forEach(function (k) { msg[k] = extra[k]; });
    this.send(msg);
  };

  LiveView.prototype.flushText = function () {
    if (this.textTimer) { clearTimeout(this.textTimer); this.textTimer = null; }
    if (this.text) { this.send({ type: "text", text: this.text }); this.text = ""; }
  };

  LiveView.prototype.typeText = function (text) {
    var self = this;
    this.text += text;
    if (this.text.length >= 200) { this.flushText(); return; }
    if (!this.textTimer) this.textTimer = setTimeout(function () { self.textTimer = null; self.flushText(); }, TEXT_FLUSH_MS);
  };

  LiveView.prototype.key = function (type, event) {
    this.send({ type: "key", event: type, key: event.key, code: event.code, keyCode: event.keyCode || 0,
      modifiers: modifiers(event) });
  };

  LiveView.prototype.bind = function () {
    var self = this;
    var canvas = this.canvas;
    if (this.button) {
      this.button.addEventListener("click", function () {
        self.flushText();
        self.send({ type: "takeover", on: !self.takingOver });
      });
    }
    if (this.escape) {
      this.escape.addEventListener("click", function () {
        var esc = { key: "Escape", code: "Escape", keyCode: 27 };
        self.key("keyDown", esc);
        self.key("keyUp", esc);
        canvas.focus();
      });
    }
    canvas.addEventListener("mousedown", function (event) {
      if (!self.takingOver) return;
      event.preventDefault();
      canvas.focus();
      self.flushText();
      self.mouse("mousePressed", event, { button: BUTTONS[event.button] || "left", clickCount: event.detail || 1 });
    });
    canvas.addEventListener("mouseup", function (event) {
      if (!self.takingOver) return;
      event.preventDefault();
      self.mouse("mouseReleased", event, { button: BUTTONS[event.button] || "left", clickCount: event.detail || 1 });
    });
    canvas.addEventListener("mousemove", function (event) {
      if (!self.takingOver) return;
      var now = performance.now();
      if (now - self.lastMove < MOVE_EVERY_MS) return;
      self.lastMove = now;
      var button = event.buttons & 1 ? "left" : event.buttons & 2 ? "right" : event.buttons & 4 ? "middle" : "none";
      self.mouse("mouseMoved", event, { button: button });
    });
    canvas.addEventListener("wheel", function (event) {
      if (!self.takingOver) return;
      event.preventDefault();
      if (self.wheel) {
        self.wheel.deltaX += event.deltaX;
        self.wheel.deltaY += event.deltaY;
        return;
      }
      var p = self.point(event);
      self.wheel = { type: "mouse", event: "mouseWheel", x: p.x, y: p.y, deltaX: event.deltaX, deltaY: event.deltaY,
        modifiers: modifiers(event) };
      setTimeout(function () { self.send(self.wheel); self.wheel = null; }, MOVE_EVERY_MS);
    }, { passive: false });
    canvas.addEventListener("contextmenu", function (event) { if (self.takingOver) event.preventDefault(); });
    canvas.addEventListener("keydown", function (event) {
      if (!self.takingOver) return;
      var shortcut = event.ctrlKey || event.metaKey;
      if (event.key === "Escape" && !shortcut && !event.altKey && !event.shiftKey) {
        // Never a keyboard trap: Esc leaves the page (the Send Esc button sends one to it).
        self.flushText();
        if (self.button) self.button.focus();
        event.preventDefault();
        return;
      }
      if (shortcut && (event.key === "v" || event.key === "V")) return; // the paste event brings the text
      event.preventDefault();
      if (event.key.length === 1 && !(shortcut && !event.altKey)) {
        self.typeText(event.key); // a character: sent as text, recorded as a length only
        return;
      }
      self.flushText();
      self.keysDown[event.code || event.key] = true;
      self.key("keyDown", event);
    });
    canvas.addEventListener("keyup", function (event) {
      if (!self.takingOver) return;
      var id = event.code || event.key;
      if (!self.keysDown[id]) return;
      delete self.keysDown[id];
      event.preventDefault();
      self.key("keyUp", event);
    });
    document.addEventListener("paste", function (event) {
      if (!self.takingOver || document.activeElement !== canvas) return;
      var text = (event.clipboardData && event.clipboardData.getData("text/plain")) || "";
      event.preventDefault();
      self.flushText();
      for (var i = 0; i < text.length; i += 1000) self.send({ type: "text", text: text.slice(i, i + 1000) });
    });
    canvas.addEventListener("blur", function () { self.flushText(); });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) return;
      while (self.heldAcks > 0) { self.heldAcks -= 1; self.send({ type: "ack" }); }
    });
  };

  // Zoom levels of the canvas (CSS keys on data-zoom: no inline styles under the page's CSP).
  var ZOOMS = ["1", "1.5", "2", "3"];
  function bindZoom() {
    var screen = document.getElementById("live-screen");
    var zoomIn = document.getElementById("live-zoom-in");
    var zoomOut = document.getElementById("live-zoom-out");
    var fit = document.getElementById("live-zoom-fit");
    var level = document.getElementById("live-zoom-level");
    if (!screen || !zoomIn || !zoomOut || !fit) return;
    function set(index) {
      var at = Math.max(0, Math.min(ZOOMS.length - 1, index));
      var canvas = document.getElementById("live-canvas");
      // Keep the corner of what was shown where it was (from "fit": the page's top left, where
      // its content starts).
      var x = screen.scrollLeft / Math.max(1, canvas.clientWidth);
      var y = screen.scrollTop / Math.max(1, canvas.clientHeight);
      screen.dataset.zoom = ZOOMS[at];
      screen.scrollLeft = x * canvas.clientWidth;
      screen.scrollTop = y * canvas.clientHeight;
      zoomOut.disabled = fit.disabled = at === 0;
      zoomIn.disabled = at === ZOOMS.length - 1;
      if (level) level.textContent = at === 0 ? "" : Math.round(Number(ZOOMS[at]) * 100) + "%";
    }
    function current() { return Math.max(0, ZOOMS.indexOf(screen.dataset.zoom || "1")); }
    zoomIn.addEventListener("click", function () { set(current() + 1); });
    zoomOut.addEventListener("click", function () { set(current() - 1); });
    fit.addEventListener("click", function () { set(0); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    bindZoom();
    var root = document.getElementById("live");
    if (root && root.dataset.liveUrl) new LiveView(root);
  });
})();
