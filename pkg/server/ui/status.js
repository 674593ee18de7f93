// Refreshes the status page in place: fetches the server-rendered (and
// server-escaped) fragment, and keeps open what the reader opened.
"use strict";
(function () {
  const live = document.getElementById("live");
  const pause = document.getElementById("pause");
  const refreshed = document.getElementById("refreshed");
  const every = 3000;

  async function refresh() {
    if (pause.checked || document.hidden) return;
    try {
      const resp = await fetch("ui/status", { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const open = new Set();
      live.querySelectorAll("details[open]").forEach((d) => open.add(d.dataset.id));
      doc.querySelectorAll("details").forEach((d) => {
        if (open.has(d.dataset.id)) d.open = true;
      });
      live.replaceChildren(...doc.body.childNodes);
      refreshed.textContent = "updated " + new Date().toLocaleTimeString();
      refreshed.classList.remove("bad");
    } catch (e) {
      refreshed.textContent = "refresh failed: " + e.message;
      refreshed.classList.add("bad");
    }
  }
  setInterval(refresh, every);
  refreshed.textContent = "refreshes every " + every / 1000 + "s";
})();
