// The radio page follows the radio live: its state, the session in
// progress and the air time of the last hour come as Server-Sent Events.
// Without JavaScript the page shows them as they were when it loaded.
"use strict";
(function () {
  const table = document.getElementById("radio");
  if (!table || !window.EventSource) return;
  const text = (id, value) => {
    const e = document.getElementById(id);
    if (e) e.textContent = value;
    return e;
  };
  // A row shown only when it has something to say.
  const row = (id, value) => {
    const e = text(id, value);
    if (e) e.closest("tr").hidden = value === "";
  };
  const events = new EventSource("/admin/radio/events");
  events.addEventListener("status", (ev) => {
    const s = JSON.parse(ev.data);
    table.dataset.events = String(Number(table.dataset.events) + 1);
    text("radio-state", s.state);
    text("radio-identity", s.identity ? ", " + s.identity : "");
    row("radio-error", s.error);
    text("radio-heard", s.heard || "nothing yet");
    text("radio-frames", s.frames);
    text("radio-peer", s.peer);
    row("radio-progress", s.peer ? s.progress : "");
    row("radio-last-session", s.last_session);
    for (const b of s.bands) {
      const tr = document.querySelector(`tr[data-band="${CSS.escape(b.name)}"]`);
      if (!tr) continue;
      tr.querySelector(".used").textContent = b.used;
      const meter = tr.querySelector("meter");
      meter.value = b.percent;
      meter.textContent = b.percent + " %";
    }
  });
  events.onerror = () => {
    // The hub restarted (settings saved) or the connection dropped: the
    // browser reconnects by itself; say that the numbers may be old.
    text("radio-state", "reconnecting…");
  };
})();
