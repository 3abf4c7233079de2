// The decision card's screenshot, large: a <dialog> with the picture and its outlines, zoom in /
// out / fit, closed by Esc or its button; the focus goes back to the picture's link. Without
// JavaScript the link opens the image itself. Zoom levels are classes (the Content Security
// Policy allows no style attribute). Delegated from the document: cards come and go with htmx.
(function () {
  "use strict";
  // "fit" shows the whole picture; the others are its own size (the page's CSS pixels) and more.
  var LEVELS = ["fit", "z100", "z150", "z200"];
  var NAMES = { z100: "100%", z150: "150%", z200: "200%" };
  var dialog = null;
  var opener = null;
  var openerCard = "";
  var level = 0;

  function button(text, label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (label) { b.setAttribute("aria-label", label); }
    b.addEventListener("click", onClick);
    return b;
  }

  function setLevel(next) {
    level = Math.max(0, Math.min(LEVELS.length - 1, next));
    var stage = dialog.querySelector(".lightbox-stage");
    LEVELS.forEach(function (name) { stage.classList.remove("zoom-" + name); });
    stage.classList.add("zoom-" + LEVELS[level]);
    var shown = NAMES[LEVELS[level]];
    if (!shown) {
      var img = stage.querySelector("img");
      var natural = img ? Number(img.getAttribute("width")) || img.naturalWidth : 0;
      shown = natural ? Math.round(100 * img.getBoundingClientRect().width / natural) + "%" : "";
      shown = "Fit" + (shown ? " (" + shown + ")" : "");
    }
    dialog.querySelector(".lightbox-level").textContent = shown;
    dialog.querySelector(".zoom-out").disabled = level === 0;
    dialog.querySelector(".zoom-fit").disabled = level === 0;
    dialog.querySelector(".zoom-in").disabled = level === LEVELS.length - 1;
    // A button that just disabled itself would drop the focus out of the dialog.
    if (document.activeElement && document.activeElement.disabled) { stage.focus(); }
  }

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "lightbox";
    dialog.setAttribute("aria-labelledby", "lightbox-title");
    var bar = document.createElement("div");
    bar.className = "lightbox-bar";
    var title = document.createElement("h2");
    title.id = "lightbox-title";
    var out = button("−", "Zoom out", function () { setLevel(level - 1); });
    out.className = "zoom-out";
    var inn = button("+", "Zoom in", function () { setLevel(level + 1); });
    inn.className = "zoom-in";
    var shown = document.createElement("span");
    shown.className = "lightbox-level";
    shown.setAttribute("aria-live", "polite");
    var fit = button("Fit", "Fit to the window", function () { setLevel(0); });
    fit.className = "zoom-fit";
    var raw = document.createElement("a");
    raw.className = "lightbox-raw";
    raw.target = "_blank";
    raw.rel = "noopener";
    raw.textContent = "Open the image";
    var close = button("Close", "", function () { dialog.close(); });
    close.className = "lightbox-close";
    [title, out, shown, inn, fit, raw, close].forEach(function (el) { bar.appendChild(el); });
    var stage = document.createElement("div");
    stage.className = "lightbox-stage";
    stage.tabIndex = 0;
    stage.setAttribute("role", "group");
    stage.setAttribute("aria-label", "The screenshot (scroll to pan)");
    var caption = document.createElement("p");
    caption.className = "lightbox-caption";
    dialog.appendChild(bar);
    dialog.appendChild(stage);
    dialog.appendChild(caption);
    dialog.addEventListener("keydown", function (event) {
      if (event.target.closest && event.target.closest("input, textarea, select")) { return; }
      if (event.key === "+" || event.key === "=") { setLevel(level + 1); event.preventDefault(); }
      else if (event.key === "-" || event.key === "_") { setLevel(level - 1); event.preventDefault(); }
      else if (event.key === "0") { setLevel(0); event.preventDefault(); }
    });
    // A click on the backdrop (outside the dialog's box) closes it too.
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) { dialog.close(); }
    });
    dialog.addEventListener("close", function () {
      stage.textContent = "";
      var back = opener;
      opener = null;
      // A live refresh may have redrawn the card meanwhile: its new picture link takes the focus.
      if (back && !document.contains(back) && openerCard) {
        var card = document.getElementById(openerCard);
        back = card && card.querySelector("a.shot-open");
      }
      if (back) { back.focus(); }
    });
    document.body.appendChild(dialog);
  }

  function open(link) {
    if (!dialog) { build(); }
    if (dialog.open) { dialog.close(); }
    opener = link;
    var article = link.closest("article.item");
    openerCard = article ? article.id : "";
    var figure = link.closest("figure");
    var frame = link.querySelector(".shot-frame");
    var stage = dialog.querySelector(".lightbox-stage");
    stage.textContent = "";
    var copy = frame.cloneNode(true);
    var img = copy.querySelector("img");
    if (img) { img.removeAttribute("loading"); }
    stage.appendChild(copy);
    var card = link.closest("article.item");
    var goal = card && card.querySelector(".goal");
    dialog.querySelector("#lightbox-title").textContent =
      (img && img.alt ? img.alt : "Screenshot") + (goal ? " — " + goal.textContent.trim() : "");
    dialog.querySelector(".lightbox-raw").href = link.href;
    var caption = figure && figure.querySelector("figcaption");
    dialog.querySelector(".lightbox-caption").textContent =
      (caption ? caption.textContent.replace(/\s+/g, " ").replace("Select the picture to enlarge it.", "").trim() + " " : "") +
      "Keys: + and − zoom, 0 fits, Esc closes.";
    dialog.showModal();
    setLevel(0);
    if (img && !img.complete) { img.addEventListener("load", function () { setLevel(level); }, { once: true }); }
    dialog.querySelector(".zoom-in").focus();
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) { return; }
    var link = event.target.closest && event.target.closest("a.shot-open");
    if (!link) { return; }
    event.preventDefault();
    open(link);
  });
})();
