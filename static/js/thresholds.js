// Threshold tuning page: draws the risk-coverage curve and the coverage each guarantee scope
// certifies (Chart.js), and previews, as the inputs change, what the setting would do to the
// waiting queue and what its calibration share costs (POST to the preview endpoint).
(function () {
  "use strict";

  const form = document.getElementById("threshold-form");
  const previewBox = document.getElementById("preview");
  const curve = JSON.parse(document.getElementById("curve-data").textContent);
  let preview = JSON.parse(document.getElementById("preview-data").textContent);
  const classSelect = document.getElementById("curve-class");
  const canvas = document.getElementById("curve-chart");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const DEBOUNCE_MS = 250;
  let chart = null;
  let timer = null;
  let sequence = 0;

  const pct = (v, digits = 1) => (v === null || v === undefined ? "–" : (100 * v).toFixed(digits) + "%");
  const num = (v, digits = 4) => (v === null || v === undefined ? "never" : Number(v).toFixed(digits));

  function mode() {
    const checked = form.querySelector("input[name=mode]:checked");
    return checked ? checked.value : "target";
  }

  function readNumber(input) {
    const raw = input.value.trim();
    return raw === "" ? null : Number(raw);
  }

  function scope() {
    const checked = form.querySelector("input[name=scope]:checked");
    return checked ? checked.value : "per_class";
  }

  function settings() {
    const manual = {};
    form.querySelectorAll("input.manual").forEach((input) => {
      manual[input.name.slice("manual_".length)] = readNumber(input);
    });
    return {
      mode: mode(),
      target_precision: readNumber(document.getElementById("target-precision")),
      threshold_confidence: readNumber(document.getElementById("threshold-confidence")),
      manual_thresholds: manual,
      scope: scope(),
      calibration_share: readNumber(document.getElementById("calibration-share")),
    };
  }

  // --- chart ------------------------------------------------------------------------------

  function series(source, name) {
    if (!source) return [];
    return name ? (source.per_class[name] || { points: [] }).points : source.overall;
  }

  function operatingPoint(name) {
    if (!preview || !preview.heldout) return [];
    if (!name) {
      return preview.heldout.precision === null ? [] : [{ x: preview.heldout.coverage, y: preview.heldout.precision }];
    }
    const row = (preview.per_class || []).find((r) => r.name === name);
    if (!row || row.heldout_precision === null) return [];
    return [{ x: row.heldout_coverage, y: row.heldout_precision }];
  }

  function targetLine() {
    const t = settings().target_precision;
    return mode() === "target" && t > 0 && t < 1 ? [{ x: 0, y: t }, { x: 1, y: t }] : [];
  }

  function yMinimum(datasets) {
    let low = 1;
    datasets.forEach((d) => d.data.forEach((p) => { low = Math.min(low, p.y); }));
    return Math.max(0, Math.floor((low - 0.02) * 20) / 20);
  }

  function chartData() {
    const name = classSelect ? classSelect.value : "";
    // clip: a perfect model's curve lies on the 100% line; draw it whole, not half cut off.
    return [
      { label: "Held-out", data: series(curve.heldout, name), borderColor: "#2f5fd0", backgroundColor: "#2f5fd0", showLine: true, pointRadius: 0, borderWidth: 2, clip: 6 },
      { label: "Live audit", data: series(curve.audit, name), borderColor: "#b54708", backgroundColor: "#b54708", showLine: true, pointRadius: 2, borderWidth: 2, borderDash: [5, 3], clip: 6 },
      { label: "Target precision", data: targetLine(), borderColor: "#067647", showLine: true, pointRadius: 0, borderWidth: 1, borderDash: [2, 4] },
      { label: "This setting (held-out)", data: operatingPoint(name), borderColor: "#b42318", backgroundColor: "#b42318", pointRadius: 6, pointHoverRadius: 8, clip: 8 },
      { label: "Calibration sample", data: series(curve.evidence, name), borderColor: "#6941c6", backgroundColor: "#6941c6", showLine: true, pointRadius: 0, borderWidth: 3, clip: 6 },
    ];
  }

  function drawChart() {
    if (!canvas || typeof Chart === "undefined") return;
    const datasets = chartData();
    if (chart) {
      chart.data.datasets.forEach((d, i) => { d.data = datasets[i].data; });
      chart.options.scales.y.min = yMinimum(datasets);
      chart.update("none");
      return;
    }
    chart = new Chart(canvas, {
      type: "scatter",
      data: { datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { min: 0, max: 1, title: { display: true, text: "Share auto-labeled (coverage)" }, ticks: { callback: (v) => pct(v, 0) } },
          y: { min: yMinimum(datasets), max: 1, title: { display: true, text: "Precision of auto-labels" }, ticks: { callback: (v) => pct(v, 0) } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const p = ctx.raw;
                const at = p.t !== undefined ? ` at threshold ${num(p.t)} (${p.n} images)` : "";
                return `${ctx.dataset.label}: precision ${pct(p.y)}, coverage ${pct(p.x)}${at}`;
              },
            },
          },
        },
      },
    });
  }

  // The guarantee chart: certified coverage of the calibration sample against the target, one
  // line per scope; the selected scope is drawn solid.
  let guaranteeChart = null;
  function drawGuarantee() {
    const box = document.getElementById("guarantee-chart");
    if (!box || !curve.guarantee || typeof Chart === "undefined") return;
    const line = (rows) => rows.map((r) => ({ x: r.target, y: r.coverage, p: r.precision, n: r.accepted }));
    const chosen = scope();
    const datasets = [
      { label: "Per class", data: line(curve.guarantee.per_class), borderColor: "#2f5fd0", backgroundColor: "#2f5fd0", showLine: true, pointRadius: 3, borderWidth: chosen === "per_class" ? 3 : 1, borderDash: chosen === "per_class" ? [] : [4, 3] },
      { label: "Overall", data: line(curve.guarantee.overall), borderColor: "#b54708", backgroundColor: "#b54708", showLine: true, pointRadius: 3, borderWidth: chosen === "overall" ? 3 : 1, borderDash: chosen === "overall" ? [] : [4, 3] },
    ];
    if (guaranteeChart) {
      guaranteeChart.data.datasets.forEach((d, i) => Object.assign(d, datasets[i]));
      guaranteeChart.update("none");
      return;
    }
    guaranteeChart = new Chart(box, {
      type: "scatter",
      data: { datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "Target precision" }, ticks: { callback: (v) => pct(v, 1) } },
          y: { min: 0, max: 1, title: { display: true, text: "Share of the calibration sample auto-labeled" }, ticks: { callback: (v) => pct(v, 0) } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${pct(ctx.raw.y)} certified at ${pct(ctx.raw.x)} (${ctx.raw.n} images, precision ${pct(ctx.raw.p)})`,
            },
          },
        },
      },
    });
  }

  function renderCost(cost) {
    const line = document.getElementById("calibration-cost");
    if (!line || !cost) return;
    // Only the cost sentence changes with the share; the evidence counts stay as rendered.
    const evidence = line.textContent.split("Evidence so far:")[1] || "";
    line.textContent =
      `A random ${Number(cost.share).toFixed(3)} of incoming images goes to inspectors whatever the model says: ` +
      `about ${cost.answers_per_1000_images} answers (${cost.cost_per_1000_images} ${cost.currency}) per 1,000 images, ` +
      `${cost.cost_per_day} ${cost.currency} a day at the last week's ${cost.images_per_day} images a day ` +
      `(${cost.answers_per_label} answers per human label here).` +
      (evidence ? ` Evidence so far:${evidence}` : "");
  }

  // --- preview ----------------------------------------------------------------------------

  function renderPreview() {
    const summary = document.getElementById("preview-summary");
    const errors = document.getElementById("preview-errors");
    const notes = document.getElementById("preview-notes");
    if (!preview.model) {
      summary.textContent = "No active model: nothing would be auto-labeled.";
      errors.textContent = "";
      notes.textContent = "";
    } else {
      summary.innerHTML = "";
      const auto = document.createElement("strong");
      auto.id = "preview-auto";
      auto.textContent = String(preview.auto_label);
      const queued = document.createElement("span");
      queued.id = "preview-queued";
      queued.textContent = String(preview.queued);
      summary.append(auto, " of ", queued, " waiting images would be auto-labeled now.");
      const heldout = preview.expected_errors_heldout === null ? "unknown (a class auto-labels nothing on the held-out set)" : "≈ " + preview.expected_errors_heldout.toFixed(1);
      errors.textContent =
        `Expected errors among them: ≈ ${preview.expected_errors_calibrated.toFixed(1)} from the calibrated confidences (sum of 1 − confidence); ` +
        `${heldout} from each class's held-out error rate at its threshold.`;
      const parts = [];
      if (preview.heldout) parts.push(`On the held-out set this setting auto-labels ${pct(preview.heldout.coverage)} at precision ${pct(preview.heldout.precision)}.`);
      if (preview.credit_pending) parts.push(`${preview.credit_pending} more pass the threshold but stay with inspectors for their review credit.`);
      if (preview.audit_rate) parts.push(`About ${pct(preview.audit_rate, 0)} of auto-labels also go to inspectors as audits.`);
      notes.textContent = parts.join(" ");
    }
    (preview.per_class || []).forEach((row) => {
      const cell = form.querySelector(`tr[data-class="${CSS.escape(row.name)}"] td[data-field=setting]`);
      if (!cell) return;
      const precision = row.heldout_precision === null ? "" : ` · held-out precision ${pct(row.heldout_precision)}`;
      cell.textContent = `${num(row.threshold)} · ${row.auto_label} of ${row.queued} waiting${precision}`;
    });
    renderCost(preview.calibration_cost);
    drawChart();
    drawGuarantee();
  }

  function showError(message) {
    previewBox.dataset.state = "error";
    document.getElementById("preview-summary").textContent = message;
    document.getElementById("preview-errors").textContent = "";
    document.getElementById("preview-notes").textContent = "";
  }

  async function refresh() {
    const mine = ++sequence;
    previewBox.dataset.state = "loading";
    let response;
    try {
      response = await fetch(form.dataset.previewUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
        body: JSON.stringify(settings()),
      });
    } catch (err) {
      if (mine === sequence) showError("The preview could not be loaded; check the connection.");
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (mine !== sequence) return; // a newer request is on its way
    if (!response.ok) {
      const messages = Object.values(body).flat().filter((m) => typeof m === "string");
      showError(messages.join(" ") || `The preview failed (${response.status}).`);
      return;
    }
    preview = body;
    renderPreview();
    previewBox.dataset.state = "ready";
  }

  function schedule() {
    clearTimeout(timer);
    previewBox.dataset.state = "loading";
    timer = setTimeout(refresh, DEBOUNCE_MS);
  }

  function showMode() {
    const manual = mode() === "manual";
    form.classList.toggle("mode-manual", manual);
    form.classList.toggle("mode-target", !manual);
    if (manual) {
      // Starting from the thresholds now in force beats starting from nothing.
      const inputs = Array.from(form.querySelectorAll("input.manual"));
      if (inputs.every((i) => i.value === "")) {
        inputs.forEach((input) => {
          const value = (preview.thresholds || {})[input.name.slice("manual_".length)];
          if (value !== null && value !== undefined) input.value = Number(value).toFixed(4);
        });
      }
    }
  }

  form.querySelectorAll("input[name=mode]").forEach((radio) =>
    radio.addEventListener("change", () => { showMode(); schedule(); }),
  );
  form.querySelectorAll("input[name=scope]").forEach((radio) => radio.addEventListener("change", schedule));
  form.querySelectorAll("input[type=number]").forEach((input) => input.addEventListener("input", schedule));
  if (classSelect) classSelect.addEventListener("change", drawChart);

  showMode();
  renderPreview();
})();
