// Django admin's run page: its fields sit inside the change form, and twin/video.js leaves
// clicks inside forms alone; let the video's chapter buttons seek there as well.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("#run-video button[data-seek]");
    var video = document.getElementById("video-player");
    if (!button || !video || !button.closest("form")) return;
    video.currentTime = parseFloat(button.dataset.seek) + 0.01;
    video.play().catch(function () {});
  });
})();
