"use strict";
// The project form: add, move and remove label rows and credit-rule rows, keep the row numbers
// and the credit rules' label suggestions in step with the labels, and point at the field a
// refusal named. The form works without it (two blank rows are always there).
(() => {
  const form = document.getElementById("project-form");
  if (!form) return;
  const labelBody = document.querySelector("#label-rows tbody");
  const ruleBody = document.querySelector("#rule-rows tbody");
  const names = document.getElementById("label-names");
  const max = Number(document.getElementById("label-rows").dataset.max || 20);

  function blank(row) {
    const copy = row.cloneNode(true);
    copy.querySelectorAll("input").forEach((input) => (input.value = ""));
    return copy;
  }

  function renumber() {
    labelBody.querySelectorAll("tr").forEach((row, i) => {
      row.querySelector(".pos").textContent = String(i + 1);
    });
    const rows = labelBody.querySelectorAll("tr").length;
    document.getElementById("add-label").disabled = rows >= max;
    if (names) {
      names.replaceChildren(
        ...[...labelBody.querySelectorAll("input[name=label_name]")]
          .map((input) => input.value.trim())
          .filter(Boolean)
          .map((value) => Object.assign(document.createElement("option"), { value })),
      );
    }
  }

  function wire(body, addButton) {
    body.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const row = button.closest("tr");
      if (button.hasAttribute("data-remove")) {
        if (body.querySelectorAll("tr").length > 1) row.remove();
        else row.querySelectorAll("input").forEach((input) => (input.value = ""));
      } else if (button.dataset.move === "-1" && row.previousElementSibling) {
        row.parentNode.insertBefore(row, row.previousElementSibling);
      } else if (button.dataset.move === "1" && row.nextElementSibling) {
        row.parentNode.insertBefore(row.nextElementSibling, row);
      }
      renumber();
    });
    addButton.addEventListener("click", () => {
      const row = blank(body.querySelector("tr"));
      body.appendChild(row);
      row.querySelector("input").focus();
      renumber();
    });
  }

  wire(labelBody, document.getElementById("add-label"));
  if (ruleBody) wire(ruleBody, document.getElementById("add-rule"));
  labelBody.addEventListener("input", renumber);
  renumber();

  // A refusal names the field to fix: mark it and bring it into view.
  const field = form.dataset.errorField;
  if (field) {
    const target =
      field === "labels"
        ? document.getElementById("labels-card")
        : field === "credit_rules"
          ? document.getElementById("rule-rows")
          : form.querySelector(`[name="${CSS.escape(field)}"]`);
    if (target) {
      target.classList.add("invalid");
      target.scrollIntoView({ block: "center" });
    }
  }
})();
