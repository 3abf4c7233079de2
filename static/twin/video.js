// The run page's session video: steps (and chapter buttons, take-overs too) seek; the one playing is marked.
(function () {
  "use strict";
  function player() { return document.getElementById("video-player"); }

  function markPlaying() {
    var video = player();
    if (!video) return;
    var now = video.currentTime;
    var playing = null;
    document.querySelectorAll("#run-video [data-seek]").forEach(function (el) {
      if (parseFloat(el.dataset.seek) <= now + 0.05) playing = el.dataset.step;
    });
    document.querySelectorAll("[data-step]").forEach(function (el) {
      el.classList.toggle("playing", playing !== null && el.dataset.step === playing);
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-seek]");
    var video = player();
    if (!target || !video) return;
    if (event.target.closest("a, form, button:not([data-seek])")) return;
    video.currentTime = parseFloat(target.dataset.seek) + 0.01;
    video.play().catch(function () {});
    video.scrollIntoView({ block: "nearest", behavior: "smooth" });
  });

  // Media events do not bubble: listen in the capture phase, so live refreshes need no rebinding.
  document.addEventListener("timeupdate", function (event) {
    if (event.target === player()) markPlaying();
  }, true);
  document.addEventListener("seeked", function (event) {
    if (event.target === player()) markPlaying();
  }, true);
  // A live refresh replaces the step list (the player itself is kept): mark it again.
  document.addEventListener("htmx:afterSettle", markPlaying);

  // The marks' positions come as data-left: the Content Security Policy refuses style
  // attributes in the markup, not styles set from a script.
  function placeMarks() {
    document.querySelectorAll(".video-marks [data-left]").forEach(function (el) {
      el.style.left = el.dataset.left;
      if (el.dataset.width) el.style.width = el.dataset.width;  // a take-over: a stretch, not a point
    });
  }
  placeMarks();
  document.addEventListener("htmx:afterSettle", placeMarks);
})();
