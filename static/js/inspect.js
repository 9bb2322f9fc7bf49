"use strict";
// The inspector page. It holds a small buffer of leases (the one on screen plus a few fetched
// ahead, their images preloaded), so a key press answers at once and the next image needs no
// round trip. Answers are sent in the background, each asking for the lease that tops the
// buffer up again (`next`), so one answer costs one request; `next/` is only for the first
// leases and after an answer that brought none.
(() => {
  const root = document.getElementById("inspector");
  if (!root) return;
  const config = JSON.parse(document.getElementById("inspect-config").textContent);
  const urls = config.urls;
  const csrf = root.dataset.csrf;
  const stage = document.getElementById("stage");
  const note = document.getElementById("stage-note");
  const suggestionBox = document.getElementById("suggestion");
  const messageBox = document.getElementById("inspect-message");
  const answersToday = document.getElementById("answers-today");
  const goldAccuracy = document.getElementById("gold-accuracy");

  const PREFETCH = 3; // leases held beyond the one on screen
  const RENEW_MS = 60_000; // leases last minutes; renew well before
  const STATS_MS = 60_000; // the server's count of today's answers, at most this often
  const EMPTY_RETRY_MS = 30_000; // look again for work after the queue ran empty
  const ERROR_RETRY_MS = 5_000; // …or after the server failed to lease
  const TINY_SIDE = 256; // below this, scale up with hard pixels instead of blur

  const labelByKey = new Map(config.labels.map((label) => [label.key.toLowerCase(), label]));

  const buffer = []; // leases; buffer[0] is on screen
  const sent = new Set(); // assignment ids answered or skipped from this page
  const pending = new Set(); // answer/skip requests in flight
  // Assignments answered from this page, in the order the inspector gave them: undo takes back
  // the last of these, not the server's latest saved answer (answers sent in quick succession
  // travel concurrently and may be saved in another order).
  let answered = [];
  let answersInFlight = 0;
  let shown = null; // the lease on screen
  let shownAt = 0; // when its image became visible (performance.now())
  let exhausted = false; // next/ said 204: nothing more to fetch for now
  let fetching = false;
  let retryTimer = null;
  let leasesComing = 0; // leases asked for by answers still in flight
  let statsTimer = null;
  let undoing = false;
  let stats = null;
  let statsVersion = 0;
  let messageTimer = null;
  let requests = 0; // API requests in flight (shown as data-pending, a hook for tests)

  // --- server -----------------------------------------------------------------------------

  async function api(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") options.headers["X-CSRFToken"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    requests++;
    markPending();
    try {
      const response = await fetch(url, options);
      let data = null;
      if (response.status !== 204) {
        try {
          data = await response.json();
        } catch {
          data = null;
        }
      }
      return { ok: response.ok, status: response.status, data };
    } catch {
      return { ok: false, status: 0, data: { detail: "No connection to the server." } };
    } finally {
      requests--;
      markPending();
    }
  }

  function errorText(result) {
    const data = result.data;
    if (data && typeof data.detail === "string") return data.detail;
    if (data && typeof data === "object") {
      // DRF field errors: {field: ["message", …]}
      return Object.entries(data)
        .map(([field, errors]) => `${field}: ${[].concat(errors).join(" ")}`)
        .join("; ");
    }
    return result.status ? `The server answered ${result.status}.` : "No connection to the server.";
  }

  // --- what the page shows ----------------------------------------------------------------

  function say(text, kind = "info") {
    messageBox.textContent = text;
    messageBox.className = `inspect-message ${kind}`;
    messageBox.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => (messageBox.hidden = true), kind === "error" ? 10_000 : 5_000);
  }

  function markPending() {
    root.dataset.pending = String(requests + pending.size + (undoing ? 1 : 0));
  }

  function renderStats() {
    if (!stats) return;
    answersToday.textContent = String(stats.answers_today + answersInFlight);
    goldAccuracy.textContent =
      stats.gold_accuracy === null || stats.gold_accuracy === undefined
        ? "none yet"
        : `${Math.round(stats.gold_accuracy * 100)}% of ${stats.gold_answers}`;
  }

  async function refreshStats() {
    const version = ++statsVersion;
    const result = await api("GET", urls.me);
    // A newer refresh or local change supersedes this answer.
    if (!result.ok || version !== statsVersion) return;
    stats = result.data;
    renderStats();
  }

  function countAnswer(delta) {
    if (stats) stats.answers_today = Math.max(0, stats.answers_today + delta);
    statsVersion++;
    renderStats();
    // Counted here; the server's figures (gold accuracy too) come at most once a minute, not
    // as a request per answer.
    if (!statsTimer) {
      statsTimer = setTimeout(() => {
        statsTimer = null;
        refreshStats();
      }, STATS_MS);
    }
  }

  function adopt(lease) {
    const img = new Image();
    img.decoding = "async";
    img.alt = `Image ${lease.item}`;
    img.draggable = false;
    img.dataset.assignment = String(lease.assignment);
    img.dataset.item = String(lease.item);
    img.addEventListener(
      "load",
      () => {
        img.classList.toggle("tiny", Math.max(img.naturalWidth, img.naturalHeight) < TINY_SIDE);
        // Time on task counts from when the image could be seen, not from the key press before.
        if (shown === lease) shownAt = performance.now();
      },
      { once: true },
    );
    img.addEventListener("error", () => {
      if (shown === lease) say(`Image ${lease.item} could not be loaded; press s to skip it.`, "error");
    });
    img.src = lease.image_url;
    lease.img = img;
    return lease;
  }

  function setZoom(on) {
    stage.classList.toggle("zoomed", on);
    if (!on) stage.style.removeProperty("--origin");
  }

  function show() {
    root.dataset.buffered = String(buffer.length);
    const lease = buffer[0] || null;
    if (lease === shown) {
      if (!lease) showIdle();
      return;
    }
    shown = lease;
    setZoom(false);
    if (!lease) {
      showIdle();
      return;
    }
    if (document.getElementById("inspect-image")) {
      document.getElementById("inspect-image").removeAttribute("id");
    }
    lease.img.id = "inspect-image";
    stage.replaceChildren(lease.img);
    shownAt = performance.now();
    root.dataset.assignment = String(lease.assignment);
    root.dataset.item = String(lease.item);
    if (lease.suggestion) {
      const percent = Math.round((lease.suggestion.confidence || 0) * 100);
      suggestionBox.textContent = `Model suggests: ${lease.suggestion.label} (${percent}%)`;
      suggestionBox.hidden = false;
    } else {
      suggestionBox.hidden = true;
    }
    root.dataset.state = "ready";
  }

  function showIdle() {
    const empty = exhausted && !fetching;
    note.textContent = empty ? "Nothing left to label — thank you." : "Loading images…";
    stage.replaceChildren(note);
    suggestionBox.hidden = true;
    delete root.dataset.assignment;
    delete root.dataset.item;
    root.dataset.state = empty ? "empty" : "loading";
  }

  // --- the queue --------------------------------------------------------------------------

  function retryLater(ms) {
    if (retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      exhausted = false;
      fill();
    }, ms);
  }

  async function fill() {
    if (fetching) return;
    fetching = true;
    try {
      // One request at a time: the server leases in order, and SQLite serialises writers anyway.
      while (!exhausted && buffer.length + leasesComing < PREFETCH + 1) {
        const result = await api("POST", urls.next);
        if (result.status === 204) {
          exhausted = true;
          retryLater(EMPTY_RETRY_MS);
          break;
        }
        if (!result.ok) {
          say(errorText(result), "error");
          retryLater(result.status === 0 || result.status >= 500 ? ERROR_RETRY_MS : EMPTY_RETRY_MS);
          break;
        }
        receive(result.data);
        show();
      }
    } finally {
      fetching = false;
      show();
    }
  }

  function receive(lease) {
    if (sent.has(lease.assignment)) return;
    if (buffer.some((held) => held.assignment === lease.assignment)) return;
    buffer.push(adopt(lease));
  }

  function track(promise, isAnswer) {
    pending.add(promise);
    if (isAnswer) answersInFlight++;
    markPending();
    renderStats();
    promise.finally(() => {
      pending.delete(promise);
      markPending();
    });
  }

  function takeCurrent() {
    const lease = buffer[0];
    if (!lease || undoing || sent.has(lease.assignment)) return null;
    sent.add(lease.assignment);
    buffer.shift();
    show();
    return lease;
  }

  function answer(label) {
    const ms = Math.max(0, Math.round(performance.now() - shownAt));
    const lease = takeCurrent();
    if (!lease) return;
    // A notice about the image just answered ("taken back…") is done with; errors stay.
    if (!messageBox.classList.contains("error")) messageBox.hidden = true;
    flashButton(label.name);
    answered.push(lease.assignment);
    if (answered.length > 200) answered.shift(); // undo reaches back two minutes: keep it short
    // The answer brings back the leases that top the buffer up: one request per answer.
    const want = Math.max(0, PREFETCH + 1 - buffer.length - leasesComing - (fetching ? 1 : 0));
    track(sendAnswer(lease, label, ms, want), true);
  }

  async function sendAnswer(lease, label, ms, want) {
    leasesComing += want;
    const result = await api("POST", urls.answer, {
      assignment: lease.assignment,
      label: label.name,
      time_on_task_ms: ms,
      next: want,
    });
    leasesComing -= want;
    answersInFlight--;
    if (result.ok) {
      countAnswer(+1);
      const leases = (result.data && result.data.next) || [];
      for (const next of leases) receive(next);
      show();
      if (leases.length < want) {
        // Nothing more for now (or the lease cap): look again later, as after an empty next/.
        exhausted = true;
        retryLater(EMPTY_RETRY_MS);
        show();
      }
      return;
    }
    // The leases it asked for did not come: each case below tops the buffer up with next/.
    const code = result.data && result.data.code;
    if (code === "already_answered") {
      renderStats();
      fill();
      return; // saved earlier (e.g. from another tab); nothing to do
    }
    // Not saved: nothing for undo to take back.
    answered = answered.filter((id) => id !== lease.assignment);
    if (result.status === 0 || result.status >= 500) {
      // Not saved: bring the image back so the answer can be given again.
      sent.delete(lease.assignment);
      buffer.unshift(lease);
      show();
      say(`${errorText(result)} Your answer was not saved; answer this image again.`, "error");
      renderStats();
      fill();
      return;
    }
    // Lease expired or not ours: that image is gone from this page; the next one is on screen.
    say(errorText(result), "error");
    renderStats();
    fill();
  }

  function skip(askReason) {
    if (!buffer[0] || undoing) return;
    let reason = "";
    if (askReason) {
      const text = window.prompt("Why skip this image? (optional)", "");
      if (text === null) return;
      reason = text.trim().slice(0, 200);
    }
    const lease = takeCurrent();
    if (!lease) return;
    track(sendSkip(lease, reason), false);
    fill();
  }

  async function sendSkip(lease, reason) {
    const result = await api("POST", urls.skip, { assignment: lease.assignment, reason });
    if (!result.ok) say(errorText(result), "error");
  }

  async function undo() {
    if (undoing) return;
    undoing = true;
    markPending();
    try {
      // The answer to take back must be saved first: let the ones still in flight land.
      await Promise.allSettled([...pending]);
      const target = answered[answered.length - 1];
      const result = await api("POST", urls.undo, target === undefined ? {} : { assignment: target });
      // Refused (taken back already, e.g. in another tab, or too old): the next press tries
      // the answer before it.
      if (target !== undefined && (result.ok || result.status >= 400)) answered.pop();
      if (!result.ok) {
        say(errorText(result), "error");
        return;
      }
      countAnswer(-1);
      buffer.unshift(adopt(result.data));
      show();
      say("Your last answer was taken back. Answer this image again.");
    } finally {
      undoing = false;
      markPending();
    }
  }

  async function renew() {
    const ids = buffer.map((lease) => lease.assignment);
    if (!ids.length) return;
    const result = await api("POST", urls.renew, { assignments: ids });
    if (!result.ok) {
      say(errorText(result), "error");
      return;
    }
    const alive = new Map(result.data.map((lease) => [lease.assignment, lease]));
    let lost = 0;
    for (let i = buffer.length - 1; i >= 0; i--) {
      const lease = buffer[i];
      if (!ids.includes(lease.assignment)) continue; // leased after the request went out
      const fresh = alive.get(lease.assignment);
      if (fresh) {
        lease.expires_at = fresh.expires_at;
      } else {
        buffer.splice(i, 1);
        lost++;
      }
    }
    if (lost) {
      say(`${lost} image${lost === 1 ? " was" : "s were"} held too long and went back to the queue.`);
      show();
      fill();
    }
  }

  // --- input ------------------------------------------------------------------------------

  function flashButton(name) {
    const button = root.querySelector(`.label-key[data-label="${CSS.escape(name)}"]`);
    if (!button) return;
    button.classList.remove("pressed");
    void button.offsetWidth; // restart the animation
    button.classList.add("pressed");
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) {
      return;
    }
    const key = event.key;
    const label = event.shiftKey ? undefined : labelByKey.get(key.toLowerCase());
    let action = null;
    if (label) action = () => answer(label);
    else if (key === "Backspace" || key === "u" || key === "U") action = undo;
    else if (key === "s") action = () => skip(false);
    else if (key === "S") action = () => skip(true);
    else if (key === "z" || key === "Z") action = () => setZoom(!stage.classList.contains("zoomed"));
    if (!action) return;
    event.preventDefault();
    if (event.repeat) return; // a held key must not answer a run of images
    action();
  });

  root.querySelectorAll(".label-key").forEach((button) => {
    const label = config.labels.find((l) => l.name === button.dataset.label);
    button.addEventListener("click", () => {
      button.blur();
      answer(label);
    });
  });

  // A label that uses a command key wins; hide that command's hint.
  root.querySelectorAll("[data-command]").forEach((hint) => {
    if (labelByKey.has(hint.dataset.command)) hint.hidden = true;
  });

  stage.addEventListener("mousemove", (event) => {
    if (!stage.classList.contains("zoomed")) return;
    const box = stage.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * 100;
    const y = ((event.clientY - box.top) / box.height) * 100;
    stage.style.setProperty("--origin", `${x.toFixed(1)}% ${y.toFixed(1)}%`);
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      renew();
      fill();
    }
  });

  async function start() {
    // Resume the leases this inspector already holds (a reload, a second tab) before new ones.
    const result = await api("GET", urls.leases);
    if (result.ok) {
      for (const lease of result.data) buffer.push(adopt(lease));
    } else {
      say(errorText(result), "error");
    }
    show();
    refreshStats();
    setInterval(renew, RENEW_MS);
    await fill();
  }

  start();
})();
