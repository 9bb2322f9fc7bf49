// Prototype page: count the chosen examples and refuse to send fewer than five.
(function () {
  "use strict";
  const MIN = 5;
  const input = document.getElementById("example-files");
  const count = document.getElementById("example-count");
  if (!input || !count) return;
  input.addEventListener("change", () => {
    const n = input.files.length;
    count.textContent = n ? `${n} example${n === 1 ? "" : "s"}${n < MIN ? ` (at least ${MIN})` : ""}` : "";
    input.setCustomValidity(n && n < MIN ? `Choose at least ${MIN} example images.` : "");
  });
})();
