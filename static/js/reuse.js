// Reused photos: keys c (confirm) and d (dismiss) decide the first open pair on the page.
(function () {
  "use strict";
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return;
    const value = { c: "confirm", d: "dismiss" }[event.key];
    if (!value) return;
    const button = document.querySelector(`form.decide button[value="${value}"]`);
    if (button) button.click();
  });
})();
