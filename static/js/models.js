// Model page: while a version trains, poll its progress every 2 s, show its phase and the time
// left (counting down between polls), and reload when it is done.
(function () {
  "use strict";

  const box = document.getElementById("training");
  if (!box) return;
  const POLL_MS = 2000;
  const TICK_MS = 1000;
  let current = JSON.parse(document.getElementById("progress-data").textContent || "{}");
  let receivedAt = Date.now();

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${Math.max(1, s)} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function left(progress) {
    // The server's estimate, counted down since it arrived; never below a second while running.
    const since = (Date.now() - receivedAt) / 1000;
    if (progress.eta_seconds !== null && progress.eta_seconds !== undefined) {
      return ` · about ${duration(Math.max(1, progress.eta_seconds - since))} left`;
    }
    if (progress.eta_max_seconds !== null && progress.eta_max_seconds !== undefined) {
      return ` · at most ${duration(Math.max(1, progress.eta_max_seconds - since))} left (time budget)`;
    }
    return "";
  }

  function phaseText(progress) {
    const number = (n) => Number(n || 0).toLocaleString();
    switch (progress.phase || (progress.trial ? "training" : "")) {
      case "preparing":
        return `Preparing: reading ${number(progress.done)} of ${number(progress.total)} images`;
      case "training":
        return `Trial ${progress.trial ?? "–"} of ${progress.trials ?? "–"} · epoch ${progress.epoch ?? "–"} of ${progress.epochs ?? "–"}`;
      case "calibrating":
        return "Calibrating confidences and choosing thresholds";
      case "scoring":
        return "Scoring the held-out images";
      default:
        return "Starting";
    }
  }

  function show(progress) {
    const percent = Number(progress.percent || 0);
    document.getElementById("progress-bar").style.width = `${percent}%`;
    const text = document.getElementById("progress-text");
    text.dataset.phase = progress.phase || progress.state || "";
    if (progress.state === "queued") {
      text.textContent = "Waiting for a worker…";
    } else {
      text.textContent = `${phaseText(progress)} · ${percent.toFixed(0)}%${left(progress)}`;
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
        current = model.progress || {};
        receivedAt = Date.now();
        show(current);
      }
    } catch (err) {
      // A missed poll is harmless; the next one catches up.
    }
    setTimeout(poll, POLL_MS);
  }

  show(current);
  setInterval(() => show(current), TICK_MS);
  setTimeout(poll, POLL_MS);
})();
