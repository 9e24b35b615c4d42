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

  function sortByRank() {
    // Stable: equal ranks keep their current order.
    const items = Array.from(list.children);
    items
      .map((item, position) => ({ item, position, rank: Number(item.querySelector("select").value) }))
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
      item.getAttribute("aria-label") + " rank " + item.querySelector("select").value);
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
    return true;
  }

  function submitJudgment() {
    if (!answered()) {
      say(form.dataset.kind === "pair" ? "Choose first: 1, 2, t or b." : "Give a score first: 1 to 7.");
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
    let handled = false;
    if (event.key === "?") { openDialog(helpDialog); handled = true; }
    else if (event.key === "g") { window.location.href = "/guidelines"; handled = true; }
    else if (event.key === "Backspace" && !form && document.querySelector(".prose") && window.location.pathname === "/guidelines") {
      window.location.href = "/judge"; handled = true;
    }
    else if (event.key === "u" && undoForm) { undoForm.submit(); handled = true; }
    else if (form) {
      if (event.key === "s") { openDialog(skipDialog); handled = true; }
      else if (event.key === "r") { document.getElementById("rationale").focus(); handled = true; }
      else if (event.key === "Enter") {
        if (target.tagName === "BUTTON" || target.tagName === "A" || target.tagName === "SELECT") return;
        submitJudgment(); handled = true;
      }
      else if (form.dataset.kind === "pair") handled = pairKey(event);
      else if (form.dataset.kind === "rating") handled = ratingKey(event);
      else if (form.dataset.kind === "ranking") handled = rankingKey(event);
    }
    if (handled) event.preventDefault();
  });
})();
