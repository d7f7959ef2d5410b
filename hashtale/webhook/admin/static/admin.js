// Keyboard shortcuts for the admin pages. Typing in a text field never triggers them.
"use strict";

function typing(event) {
  const t = event.target;
  return t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) && !["checkbox", "radio", "submit"].includes(t.type);
}

function queueKeys(rows) {
  let current = -1;
  const select = (i) => {
    if (rows.length === 0) return;
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("current", j === current));
    rows[current].scrollIntoView({block: "nearest"});
  };
  rows.forEach((row) => row.addEventListener("dblclick", () => { window.location = row.dataset.href; }));
  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") select(current + 1);
    else if (e.key === "k") select(current - 1);
    else if (e.key === "Enter" && current >= 0) window.location = rows[current].dataset.href;
    else if (e.key === "/") { e.preventDefault(); document.getElementById("tag-filter").focus(); }
  });
}

// One heat map at a time over the photo (or none): the one of the hashtag hovered, focused, or cycled to with h.
function heatmaps() {
  const overlays = Array.from(document.querySelectorAll(".frame .heatmap"));
  const items = Array.from(document.querySelectorAll(".hashtag[data-rank]"));
  let shown = overlays.findIndex((o) => !o.hidden);
  const show = (i) => {
    shown = i;
    overlays.forEach((o, j) => { o.hidden = j !== i; });
    const rank = i >= 0 ? overlays[i].dataset.rank : null;
    items.forEach((li) => li.classList.toggle("shown", li.dataset.rank === rank));
  };
  items.forEach((li) => {
    const i = overlays.findIndex((o) => o.dataset.rank === li.dataset.rank);
    if (i < 0) return;
    li.addEventListener("mouseenter", () => show(i));
    li.addEventListener("focusin", () => show(i));
  });
  show(shown);
  return () => show(shown + 1 < overlays.length ? shown + 1 : -1);  // next map, then the bare photo
}

function postKeys(form) {
  const cycleHeatmaps = heatmaps();
  const boxes = form.querySelectorAll("input[name=relevant]");
  const click = (name) => { const b = form.querySelector(`input[name=${name}]`); if (b) b.click(); };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); click("save"); return; }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = parseInt(e.key, 10);
    if (n >= 1 && n <= boxes.length) boxes[n - 1].click();
    else if (e.key === "y" || e.key === "n") {
      const radio = form.querySelector(`input[name=hashtag_relevant][value=${e.key === "y" ? "yes" : "no"}]`);
      if (radio) radio.click();
    } else if (e.key === "h") {
      cycleHeatmaps();
    } else if (e.key === "]") {
      const next = document.getElementById("next-post");
      if (next) window.location = next.href;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const rows = Array.from(document.querySelectorAll("table.queue tbody tr[data-href]"));
  if (rows.length) queueKeys(rows);
  const form = document.getElementById("review-form");
  if (form) postKeys(form);
});
