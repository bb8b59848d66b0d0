// Live progress of "Sync now": rows update from Server-Sent Events, and
// the summary appears when the round ends. Without JavaScript the page
// refreshes itself instead.
"use strict";
(function () {
  const table = document.getElementById("progress");
  if (!table || table.dataset.running !== "true") return;
  const events = new EventSource("/admin/sync/events");
  events.addEventListener("progress", (e) => {
    const board = JSON.parse(e.data);
    table.dataset.events = String(Number(table.dataset.events || 0) + 1);
    for (const u of board.uplinks) {
      const row = table.querySelector(`tr[data-uplink="${u.id}"]`);
      if (!row) continue;
      const cell = row.querySelector(".state");
      const text = u.state + (u.error ? ": " + u.error : "");
      // A link still dialling counts the seconds it has waited.
      if (u.state.startsWith("connecting")) {
        if (!row.dataset.since) row.dataset.since = String(Date.now());
      } else {
        delete row.dataset.since;
      }
      cell.dataset.text = text;
      cell.textContent = text;
      row.querySelector(".sent").textContent = u.sent;
      row.querySelector(".received").textContent = u.received;
    }
  });
  const ticker = setInterval(() => {
    for (const row of table.querySelectorAll("tr[data-since]")) {
      const cell = row.querySelector(".state");
      const secs = Math.round((Date.now() - Number(row.dataset.since)) / 1000);
      cell.textContent = `${cell.dataset.text} · ${secs} s so far`;
    }
  }, 1000);
  events.addEventListener("summary", (e) => {
    clearInterval(ticker);
    const s = JSON.parse(e.data);
    const p = document.getElementById("summary");
    p.textContent = s.text;
    // Green only when every uplink synced.
    p.className = s.failed ? "warn" : "ok";
    p.hidden = false;
    table.dataset.running = "false";
    events.close();
  });
  events.onerror = () => {
    // The hub restarted or the connection dropped: show the latest state.
    events.close();
    setTimeout(() => location.reload(), 2000);
  };
})();
