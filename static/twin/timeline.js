// The run page is redrawn on every event: lines of the timeline a person opened stay open.
(function () {
  "use strict";
  var open = new Set();
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.classList.contains("tl-entry") || !details.id) return;
    if (details.open) open.add(details.id); else open.delete(details.id);
  }, true);
  // Opened a moment ago, its toggle event may not have come yet: the page as it is counts.
  document.body.addEventListener("htmx:beforeSwap", function () {
    document.querySelectorAll("details.tl-entry[open]").forEach(function (details) {
      if (details.id) open.add(details.id);
    });
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    open.forEach(function (id) {
      var details = document.getElementById(id);
      if (details instanceof HTMLDetailsElement && details.classList.contains("tl-entry")) details.open = true;
    });
  });
})();
