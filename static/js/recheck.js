// Recheck page: a label's keyboard key (1, 2, …) answers the first open recheck.
(function () {
  "use strict";
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey) return;
    const form = document.querySelector("form.resolve");
    if (!form) return;
    const index = "1234567890".indexOf(event.key);
    const buttons = form.querySelectorAll("button[name=label]");
    if (index >= 0 && index < buttons.length) buttons[index].click();
  });
})();
