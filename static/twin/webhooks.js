// Copy a signing secret shown once: the button copies the text of its target element.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    var note = button.parentElement.querySelector(".copied");
    if (!source) return;
    var text = source.textContent.trim();
    function done(message) { if (note) note.textContent = message; }
    function selectIt() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done("Copied."); }, function () {
        selectIt();
        done("Selected: press Ctrl+C (⌘C) to copy.");
      });
    } else {
      selectIt();
      done("Selected: press Ctrl+C (⌘C) to copy.");
    }
  });
})();
