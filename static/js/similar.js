// Similar images: changing how many to show reloads the page with that k.
(function () {
  "use strict";
  const select = document.getElementById("k");
  if (select) select.addEventListener("change", () => select.form.submit());
})();
