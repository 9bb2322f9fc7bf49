// Catalog page: say how many photos are chosen before they are sent.
(function () {
  "use strict";
  const input = document.getElementById("catalog-files");
  const count = document.getElementById("catalog-count");
  if (!input || !count) return;
  input.addEventListener("change", () => {
    const n = input.files.length;
    count.textContent = n ? `${n} photo${n === 1 ? "" : "s"} chosen` : "";
  });
})();
