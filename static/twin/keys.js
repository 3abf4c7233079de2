// Keyboard and focus: where the focus goes after a decision, the inbox's shortcuts (j k a r ?),
// and the confirmation dialog (reject with `r`, cancel a run). No framework; the dialogs are
// <dialog> elements of base.html, so the page works the same without this file (no shortcuts,
// and the forms post without asking).
(function () {
  "use strict";

  var CARD = "article.item";
  var PENDING = "form.reject"; // a card still waiting for a decision carries the reject form

  function cards(container) {
    return Array.prototype.slice.call((container || document).querySelectorAll(CARD));
  }
  function isPending(card) { return !!card.querySelector(PENDING); }
  function approveForm(card) {
    // form.approve on the decision card; the answer form is the one that is not the reject form.
    return card.querySelector("form.approve") || card.querySelector(".decide form:not(.reject)");
  }
  // Cards take the focus from script only (tabindex -1): Tab still goes through their controls.
  function focusable(card) {
    if (!card.hasAttribute("tabindex")) card.setAttribute("tabindex", "-1");
    return card;
  }
  // Post a form through htmx even when it was redrawn a moment ago: htmx takes on new content only
  // once it settles (20 ms, longer on a busy tab), and a form it has not taken on yet would post
  // the browser's own way, reloading the page. Taking it on now is what the settle would do.
  function submit(form) {
    if (window.htmx) window.htmx.process(form);
    form.requestSubmit();
  }
  function focusCard(card) {
    focusable(card).focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }
  function heading() {
    var h = document.querySelector("main h1");
    if (h && !h.hasAttribute("tabindex")) h.setAttribute("tabindex", "-1");
    return h;
  }

  // -- focus after a decision ---------------------------------------------------------------------
  // The decided card is replaced out of band (its buttons with it), then dropped by the live
  // refresh: either way the focus would fall to <body>. It goes to the next pending card of the
  // same list instead, the previous one when it was the last, the list's heading when none is left.
  var deciding = null;

  function neighbours(card) {
    var list = card.parentElement ? cards(card.parentElement) : [];
    var at = list.indexOf(card);
    return {
      after: list.slice(at + 1).map(function (c) { return c.id; }),
      before: list.slice(0, at).reverse().map(function (c) { return c.id; }),
      inInbox: !!card.closest("#inbox-list"),
    };
  }

  function firstPending(ids) {
    for (var i = 0; i < ids.length; i++) {
      var card = document.getElementById(ids[i]);
      if (card && isPending(card)) return card;
    }
    return null;
  }

  function afterDecision(record) {
    var card = document.getElementById(record.id);
    var notices = document.getElementById("notices");
    var newest = notices && notices.firstElementChild;
    var failed = record.failed || (newest && newest.classList.contains("notice-error") && card && isPending(card));
    if (failed && card) {
      // Still waiting (a wrong code, a locked pause): back to the field to correct it.
      var field = card.querySelector("[aria-invalid=true], input[name=input], input[name=choice]");
      (field || focusable(card)).focus();
      return;
    }
    var next = firstPending(record.after) || firstPending(record.before);
    if (next) { focusCard(next); return; }
    if (record.inInbox) {
      var h = heading();
      if (h) { h.focus(); return; }
    }
    if (card) focusable(card).focus(); // the run page: the card now says what was decided
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target.closest && event.target.closest("form");
    var card = form && form.closest(CARD);
    if (!card || !card.id) return;
    var near = neighbours(card);
    deciding = { id: card.id, after: near.after, before: near.before, inInbox: near.inInbox, failed: false };
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!deciding || !event.detail || !event.detail.target || event.detail.target.id !== "notices") return;
    var record = deciding;
    deciding = null;
    afterDecision(record);
  });
  function requestFailed() {
    if (!deciding) return;
    var record = deciding;
    deciding = null;
    record.failed = true;
    afterDecision(record);
  }
  document.addEventListener("htmx:responseError", requestFailed);
  document.addEventListener("htmx:sendError", requestFailed);

  // A live refresh that drops the focused card (decided elsewhere) moves the focus on the same way.
  var refreshing = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "inbox-list") return;
    var card = document.activeElement && document.activeElement.closest && document.activeElement.closest(CARD);
    if (!card || !card.id) { refreshing = null; return; }
    var near = neighbours(card);
    refreshing = { id: card.id, after: near.after, before: near.before, inInbox: true, failed: false };
  });
  // afterSwap, not afterSettle: it runs in the same task as the swap, so nothing sees the gap.
  document.addEventListener("htmx:afterSwap", function () {
    if (!refreshing) return;
    var record = refreshing;
    refreshing = null;
    if (document.activeElement && document.activeElement !== document.body) return; // htmx kept it
    var same = document.getElementById(record.id);
    // htmx refocuses an element of the same id, but the new card is not focusable before this.
    if (same) focusable(same).focus({ preventScroll: true });
    else afterDecision(record);
  });

  // -- dialogs ------------------------------------------------------------------------------------
  var returnTo = null;

  function openDialog(dialog, focus) {
    returnTo = document.activeElement;
    dialog.showModal();
    if (focus) focus.focus();
  }
  // A modal <dialog> already keeps the page inert; Tab and Shift-Tab also wrap inside it
  // (rather than leaving for the browser's own controls).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") return;
    var dialog = document.querySelector("dialog[open]");
    if (!dialog) return;
    var items = Array.prototype.slice.call(dialog.querySelectorAll("button, input, select, textarea, a[href]"))
      .filter(function (el) { return !el.disabled && !el.closest("[hidden]"); });
    if (!items.length) return;
    var first = items[0];
    var last = items[items.length - 1];
    if (event.shiftKey && document.activeElement === first) { last.focus(); event.preventDefault(); }
    else if (!event.shiftKey && document.activeElement === last) { first.focus(); event.preventDefault(); }
  }, true);

  function restoreFocus() {
    var back = returnTo;
    returnTo = null;
    // A live refresh may have redrawn it meanwhile: the element of the same id, then.
    if (back && !document.contains(back) && back.id) back = document.getElementById(back.id);
    if (!back || !document.contains(back) || back === document.body) return;
    // A redrawn card has lost the tabindex the script gave it: without it, focus() does nothing.
    if (back.matches && back.matches(CARD)) focusable(back);
    back.focus();
  }

  // confirm({title, text, yes, no, reason}, onYes): onYes(reasonText) after "yes"; focus returns.
  var pendingConfirm = null;
  function confirmWith(options, onYes) {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog) { onYes(""); return; }
    document.getElementById("confirm-title").textContent = options.title;
    document.getElementById("confirm-text").textContent = options.text || "";
    document.getElementById("confirm-yes").textContent = options.yes;
    document.getElementById("confirm-no").textContent = options.no;
    var reasonBox = document.getElementById("confirm-reason");
    var note = document.getElementById("confirm-note");
    reasonBox.hidden = !options.reason;
    note.value = options.reasonValue || "";
    dialog.returnValue = "";
    pendingConfirm = onYes;
    // The safe answer has the focus, except where a reason may be typed first.
    openDialog(dialog, options.reason ? note : document.getElementById("confirm-no"));
  }

  function bindDialogs() {
    var confirmDialog = document.getElementById("confirm-dialog");
    if (confirmDialog) {
      confirmDialog.addEventListener("close", function () {
        var onYes = pendingConfirm;
        pendingConfirm = null;
        restoreFocus();
        if (onYes && confirmDialog.returnValue === "confirm") onYes(document.getElementById("confirm-note").value);
      });
    }
    var keysDialog = document.getElementById("keys-dialog");
    if (keysDialog) keysDialog.addEventListener("close", restoreFocus);
  }

  // Forms with data-confirm ask first (cancel a run). Capture phase: before htmx or a plain post.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-confirm]")) return;
    if (form.dataset.confirmed === "yes") { delete form.dataset.confirmed; return; }
    if (!document.getElementById("confirm-dialog")) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    var action = form.getAttribute("action");
    confirmWith({
      title: form.dataset.confirmTitle || "Are you sure?",
      text: form.dataset.confirm,
      yes: form.dataset.confirmYes || "Confirm",
      no: form.dataset.confirmNo || "Cancel",
    }, function () {
      // A live refresh may have redrawn the form while the dialog was open: post the one shown now.
      var target = document.contains(form) ? form : document.querySelector('form[data-confirm][action="' + CSS.escape(action) + '"]');
      if (!target) return;
      target.dataset.confirmed = "yes";
      submit(target);
    });
  }, true);

  // -- the inbox's shortcuts ----------------------------------------------------------------------
  function typing(el) {
    if (!el || el === document.body) return false;
    return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }
  function currentCard() {
    var el = document.activeElement;
    return el && el.closest ? el.closest("#inbox-list " + CARD) : null;
  }
  function move(by) {
    var list = cards(document.getElementById("inbox-list"));
    if (!list.length) return;
    var at = list.indexOf(currentCard());
    var next = at === -1 ? list[0] : list[Math.max(0, Math.min(list.length - 1, at + by))];
    focusCard(next);
  }
  function approve(card) {
    var form = approveForm(card);
    if (!form) return;
    var field = form.querySelector("input[name=input]") ||
      form.querySelector("input[name=choice]:checked") || form.querySelector("input[name=choice]");
    if (field) { field.focus(); return; }
    submit(form);
  }
  function reject(card) {
    var form = card.querySelector(PENDING);
    if (!form) return;
    var goal = card.querySelector(".goal");
    var note = form.querySelector("input[name=note]");
    confirmWith({
      title: "Reject this pause?",
      text: (goal ? "“" + goal.textContent.trim() + "”: " : "") + "the run ends here.",
      yes: "Reject",
      no: "Cancel",
      reason: !!note,
      reasonValue: note ? note.value : "",
    }, function (reason) {
      var current = document.getElementById(card.id);
      var target = current && current.querySelector(PENDING);
      if (!target) return;
      var field = target.querySelector("input[name=note]");
      if (field) field.value = reason;
      submit(target);
    });
  }
  function showKeys() {
    var dialog = document.getElementById("keys-dialog");
    if (dialog && !dialog.open) openDialog(dialog, dialog.querySelector("button"));
  }

  document.addEventListener("keydown", function (event) {
    if (!document.getElementById("inbox-list")) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    if (document.querySelector("dialog[open]")) return;
    var card = currentCard();
    if (typing(event.target)) {
      // Esc leaves a card's field for the card, where the keys work again.
      if (event.key === "Escape" && card) { focusCard(card); event.preventDefault(); }
      return;
    }
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": if (card && isPending(card)) approve(card); else return; break;
      case "r": if (card && isPending(card)) reject(card); else return; break;
      case "?": showKeys(); break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    bindDialogs();
    var list = document.getElementById("inbox-list");
    if (!list || !document.getElementById("keys-dialog")) return;
    // The hint exists only where the keys work (with this script); a button for those without a keyboard.
    var hint = document.createElement("p");
    hint.className = "keys-hint";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link-muted";
    button.textContent = "Press ? for keyboard shortcuts";
    button.addEventListener("click", showKeys);
    hint.appendChild(button);
    list.parentElement.insertBefore(hint, list);
  });
})();
