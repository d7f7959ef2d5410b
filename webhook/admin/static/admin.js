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

function postKeys(form) {
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
