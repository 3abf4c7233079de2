// Accessibility fixes that depend on what the browser lays out, for the dashboard and admin.
//
// 1. A box that scrolls sideways (a wide table on a phone) must be reachable by keyboard, or a
//    keyboard user cannot scroll it: while it overflows it takes a tab stop and a name (WCAG
//    2.1.1; axe "scrollable-region-focusable").
// 2. Django admin's tabular inlines label their fields by the column heading only, which a screen
//    reader does not read out in a form: each field is given the heading and its row as its name
//    (axe "label", "select-name").
(function () {
  "use strict";

  var SCROLLERS = ".table-wrap, .inline-group, .twin-json, .twin-page-text";

  function nameOf(box) {
    var section = box.closest("section, fieldset, .module");
    var heading = box.querySelector("caption, h2") || (section && section.querySelector("h1, h2, h3"));
    var text = heading ? heading.textContent.trim().replace(/\s+/g, " ") : "";
    return text ? text + " (scrolls)" : "Scrolling content";
  }

  function focusScrollers() {
    document.querySelectorAll(SCROLLERS).forEach(function (box) {
      var overflows = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
      if (overflows && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.dataset.a11yScroll = "1";
        if (!box.hasAttribute("role")) box.setAttribute("role", "region");
        if (!box.hasAttribute("aria-label") && !box.hasAttribute("aria-labelledby")) {
          box.setAttribute("aria-label", nameOf(box));
        }
      } else if (!overflows && box.dataset.a11yScroll) {
        box.removeAttribute("tabindex");
        delete box.dataset.a11yScroll;
      }
    });
  }

  function labelInlineFields(root) {
    root.querySelectorAll(".tabular table").forEach(function (table) {
      var headings = {};
      table.querySelectorAll("thead th").forEach(function (th) {
        th.classList.forEach(function (cls) {
          if (cls.indexOf("column-") === 0) headings[cls.slice(7)] = th.textContent.trim();
        });
      });
      table.querySelectorAll("tbody tr.form-row:not(.empty-form)").forEach(function (row, index) {
        var original = row.querySelector("td.original p");
        var which = original ? original.textContent.trim().replace(/\s+/g, " ") : "row " + (index + 1);
        row.querySelectorAll("td").forEach(function (cell) {
          var heading = "";
          cell.classList.forEach(function (cls) {
            if (cls.indexOf("field-") === 0) heading = headings[cls.slice(6)] || cls.slice(6);
          });
          if (cell.classList.contains("delete")) heading = "Delete";
          if (!heading) return;
          cell.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(function (field) {
            var labelled = field.hasAttribute("aria-label") || field.hasAttribute("aria-labelledby") ||
              (field.id && document.querySelector('label[for="' + CSS.escape(field.id) + '"]'));
            if (!labelled) field.setAttribute("aria-label", heading + " — " + which);
          });
        });
      });
    });
  }

  function all() {
    labelInlineFields(document);
    focusScrollers();
  }

  var pending = 0;
  function soon() {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(all);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", all);
  } else {
    all();
  }
  window.addEventListener("resize", soon);
  window.addEventListener("load", soon);
  document.addEventListener("htmx:afterSettle", soon);
  document.addEventListener("formset:added", soon); // Django admin: "Add another ..."
})();
