// Apprentice studio: keyboard-first judging. Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

(function () {
  const form = document.getElementById("judge-form");
  const live = document.getElementById("live");
  const skipDialog = document.getElementById("skip-dialog");
  const helpDialog = document.getElementById("help-dialog");
  const undoForm = document.getElementById("undo-form");
  const shownAt = Date.now();

  function say(text) {
    if (!live) return;
    live.textContent = text;
    live.classList.toggle("empty", !text);
  }

  function openDialog(dialog) {
    if (dialog && !dialog.open) dialog.showModal();
  }

  document.querySelectorAll("[data-action=help]").forEach((b) => b.addEventListener("click", () => openDialog(helpDialog)));
  document.querySelectorAll("[data-action=skip]").forEach((b) => b.addEventListener("click", () => openDialog(skipDialog)));
  document.querySelectorAll("[data-action=close]").forEach((b) =>
    b.addEventListener("click", () => b.closest("dialog").close()));

  // -- ranking: drag, keys, ties ---------------------------------------------------------------
  const list = document.getElementById("ranking");

  function rankInputs() {
    return Array.from(document.querySelectorAll("select[data-rank-for]"));
  }

  function syncHidden() {
    rankInputs().forEach((select) => {
      document.getElementById("rank-" + select.dataset.rankFor).value = select.value;
    });
  }

  function rankOf(item) {
    const value = item.querySelector("select").value;
    return value === "" ? Infinity : Number(value); // unranked responses stay below the ranked ones
  }

  function sortByRank() {
    // Stable: equal ranks keep their current order.
    const items = Array.from(list.children);
    items
      .map((item, position) => ({ item, position, rank: rankOf(item) }))
      .sort((a, b) => a.rank - b.rank || a.position - b.position)
      .forEach(({ item }) => list.appendChild(item));
  }

  function renumberByPosition() {
    Array.from(list.children).forEach((item, position) => {
      item.querySelector("select").value = String(position + 1);
    });
    syncHidden();
  }

  function describeRanking() {
    const parts = Array.from(list.children).map((item) =>
      item.getAttribute("aria-label") + " rank " + (item.querySelector("select").value || "not given"));
    say(parts.join(", "));
  }

  if (list) {
    let dragged = null;
    list.addEventListener("dragstart", (event) => {
      dragged = event.target.closest(".rank-item");
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.index);
    });
    list.addEventListener("dragover", (event) => {
      event.preventDefault();
      const over = event.target.closest(".rank-item");
      list.querySelectorAll(".drop-target").forEach((item) => item.classList.remove("drop-target"));
      if (over && over !== dragged) over.classList.add("drop-target");
    });
    list.addEventListener("drop", (event) => {
      event.preventDefault();
      const over = event.target.closest(".rank-item");
      if (dragged && over && over !== dragged) list.insertBefore(dragged, over);
      if (dragged && !over) list.appendChild(dragged);
      renumberByPosition();
      describeRanking();
    });
    list.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      list.querySelectorAll(".drop-target").forEach((item) => item.classList.remove("drop-target"));
      dragged = null;
    });
    rankInputs().forEach((select) => select.addEventListener("change", () => {
      syncHidden();
      sortByRank();
      select.closest(".rank-item").focus();
    }));
    if (rankInputs().some((select) => select.value !== "")) sortByRank(); // a correction shows the earlier order
  }

  function rankingKey(event) {
    const item = document.activeElement && document.activeElement.closest && document.activeElement.closest(".rank-item");
    const items = Array.from(list.children);
    const count = items.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (document.activeElement.tagName === "SELECT") return false;
      const index = item ? items.indexOf(item) : -1;
      const step = event.key === "ArrowDown" ? 1 : -1;
      if (item && event.altKey) {
        const target = items[index + step];
        if (target) {
          if (step > 0) list.insertBefore(target, item); else list.insertBefore(item, target);
          renumberByPosition();
          item.focus();
          describeRanking();
        }
        return true;
      }
      const next = items[Math.min(count - 1, Math.max(0, index + step))];
      if (next) next.focus();
      return true;
    }
    const digit = Number(event.key);
    if (item && Number.isInteger(digit) && digit >= 1 && digit <= count) {
      item.querySelector("select").value = String(digit);
      syncHidden();
      sortByRank();
      item.focus();
      describeRanking();
      return true;
    }
    return false;
  }

  // -- pair and rating -------------------------------------------------------------------------
  function check(name, value) {
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (!input) return false;
    input.checked = true;
    input.focus();
    const label = input.closest("label").cloneNode(true);
    label.querySelectorAll("kbd").forEach((key) => key.remove());
    say(label.textContent.trim().replace(/\s+/g, " ") + " selected");
    return true;
  }

  function pairKey(event) {
    const choice = { "1": "A", "2": "B", t: "tie", b: "both_bad" }[event.key];
    return choice ? check("choice", choice) : false;
  }

  function ratingKey(event) {
    const digit = Number(event.key);
    if (!Number.isInteger(digit) || digit < 1 || digit > 7) return false;
    const scale = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-scale]");
    return check(scale ? scale.dataset.scale : "score", String(digit));
  }

  function answered() {
    const kind = form.dataset.kind;
    if (kind === "pair") return form.querySelector("input[name=choice]:checked") !== null;
    if (kind === "rating") return form.querySelector("input[name=score]:checked") !== null;
    return rankInputs().every((select) => select.value !== ""); // a ranking is sent only once every response has a rank
  }

  const NOT_ANSWERED = {
    pair: "Choose first: 1, 2, t or b.",
    rating: "Give a score first: 1 to 7.",
    ranking: "Rank every response first: drag them into order, or focus one and press its rank.",
  };

  function submitJudgment() {
    if (!answered()) {
      say(NOT_ANSWERED[form.dataset.kind]);
      return;
    }
    form.querySelector("input[name=duration_ms]").value = String(Date.now() - shownAt);
    form.querySelectorAll("button[type=submit]").forEach((button) => { button.disabled = true; });
    form.submit();
  }

  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (event.submitter && event.submitter.getAttribute("form") === "undo-form") { undoForm.submit(); return; }
      submitJudgment();
    });
  }

  // -- undo: only within its window, and say so afterwards ------------------------------------
  const undoSeconds = form ? Number(form.dataset.undoSeconds || 0) : 0;
  const undoLate = "Too late to undo: answers can be taken back for " + (undoSeconds || "a few") +
    " seconds. Correct older answers under Your answers (/history).";
  if (form && undoForm) {
    const left = Number(form.dataset.undoSecondsLeft || 0);
    window.setTimeout(() => {
      const button = document.getElementById("undo-button");
      if (button) button.remove();
      undoForm.remove();
    }, Math.max(0, left) * 1000);
  }

  function undo() {
    if (document.getElementById("undo-form")) undoForm.submit();
    else say(undoLate);
  }

  // -- shortcuts, and typing outside the reason field -------------------------------------------
  // A letter pressed outside any field could be a shortcut or the first letter of a word typed without
  // clicking the reason field first. Letter shortcuts wait a moment: if another character follows at
  // typing speed, the letters go into the reason field instead and no shortcut fires.
  const TYPING_GAP_MS = 400;
  const rationale = document.getElementById("rationale");
  let pending = null;

  function startTyping(text) {
    rationale.focus();
    rationale.value += text;
    say("Writing your reason; shortcuts are off until you press Esc.");
  }

  function runPending() {
    if (!pending) return;
    const action = pending.action;
    window.clearTimeout(pending.timer);
    pending = null;
    action();
  }

  function letterAction(key) {
    if (key === "g") return () => { window.location.href = "/guidelines"; };
    if (key === "u") return undo;
    if (!form) return null;
    if (key === "s") return () => openDialog(skipDialog);
    if (form.dataset.kind === "pair" && (key === "t" || key === "b")) return () => pairKey({ key });
    return null;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey) return;
    if (document.querySelector("dialog[open]")) return; // dialogs handle their own keys (Enter, Esc)
    const target = event.target;
    const typing = target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"
      || target.tagName === "TEXTAREA";
    if (typing) {
      if (event.key === "Escape") target.blur();
      if (event.key === "Enter" && form && form.contains(target)) { event.preventDefault(); submitJudgment(); }
      return;
    }
    const printable = event.key.length === 1 && !event.altKey;
    if (pending) {
      if (printable && event.key !== "?") {
        // A second character at typing speed: this is a word, not a shortcut.
        const first = pending.key;
        window.clearTimeout(pending.timer);
        pending = null;
        startTyping(first + event.key);
        event.preventDefault();
        return;
      }
      runPending(); // Enter, arrows and the like: the shortcut first, then this key
    }
    let handled = false;
    const action = /^[a-z]$/.test(event.key) ? letterAction(event.key) : null;
    if (event.key === "?") { openDialog(helpDialog); handled = true; }
    else if (action && rationale) {
      pending = { key: event.key, action, timer: window.setTimeout(runPending, TYPING_GAP_MS) };
      handled = true;
    }
    else if (action) { action(); handled = true; }
    else if (event.key === "Backspace" && !form && document.querySelector(".prose") && window.location.pathname === "/guidelines") {
      window.location.href = "/judge"; handled = true;
    }
    else if (form) {
      if (event.key === "r") { rationale.focus(); handled = true; }
      else if (event.key === "Enter") {
        if (target.tagName === "BUTTON" || target.tagName === "A" || target.tagName === "SELECT") return;
        submitJudgment(); handled = true;
      }
      else if (form.dataset.kind === "pair") handled = pairKey(event);
      else if (form.dataset.kind === "rating") handled = ratingKey(event);
      else if (form.dataset.kind === "ranking") handled = rankingKey(event);
      if (!handled && printable && /\p{L}/u.test(event.key) && rationale) { startTyping(event.key); handled = true; }
    }
    if (handled) event.preventDefault();
  });
})();
