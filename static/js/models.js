// Model page: while a version trains, poll its progress every 2 s and reload when it is done.
(function () {
  "use strict";

  const box = document.getElementById("training");
  if (!box) return;
  const POLL_MS = 2000;

  function eta(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 90) return ` · about ${Math.max(1, Math.round(seconds))} s left`;
    return ` · about ${Math.round(seconds / 60)} min left`;
  }

  function show(progress) {
    const percent = Number(progress.percent || 0);
    document.getElementById("progress-bar").style.width = `${percent}%`;
    const text = document.getElementById("progress-text");
    if (progress.state === "queued") {
      text.textContent = "Waiting for a worker…";
    } else {
      text.textContent =
        `Trial ${progress.trial ?? "–"} of ${progress.trials ?? "–"} · ` +
        `epoch ${progress.epoch ?? "–"} of ${progress.epochs ?? "–"} · ${percent.toFixed(1)}%` +
        eta(progress.eta_seconds);
    }
    document.getElementById("progress-message").textContent = progress.message || "";
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        const model = await response.json();
        box.dataset.status = model.status;
        if (model.status !== "training") {
          window.location.reload(); // metrics, gate and buttons changed: show them
          return;
        }
        show(model.progress || {});
      }
    } catch (err) {
      // A missed poll is harmless; the next one catches up.
    }
    setTimeout(poll, POLL_MS);
  }

  setTimeout(poll, POLL_MS);
})();
