// Cost report: the daily chart of final labels, machine against inspectors (and imported).
(function () {
  "use strict";
  var source = document.getElementById("daily-chart-data");
  var canvas = document.getElementById("daily-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var style = getComputedStyle(document.documentElement);
  var color = function (name, fallback) {
    return (style.getPropertyValue(name) || "").trim() || fallback;
  };
  var datasets = [
    { label: "Machine (auto-labeled)", data: data.machine, backgroundColor: color("--accent", "#2f5fd0") },
    { label: "Inspectors (consensus or expert)", data: data.human, backgroundColor: "#f79009" }
  ];
  // Labels that came with the data (imported, seeded gold) only get a bar when there are any,
  // to keep the common chart simple.
  if (data.imported.some(function (n) { return n > 0; })) {
    datasets.push({ label: "Imported or seeded gold", data: data.imported, backgroundColor: "#98a2b3" });
  }
  new Chart(canvas, {
    type: "bar",
    data: { labels: data.days, datasets: datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "final labels" } }
      },
      plugins: { legend: { position: "bottom" } }
    }
  });
})();
