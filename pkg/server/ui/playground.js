// The mapping playground: posts the event and the edited mapping to
// /api/v1/translate on every edit, and the event alone (the running
// mapping) to compare labels. Everything from the server is shown with
// textContent, never parsed as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const eventBox = $("event"), mappingBox = $("mapping"), sample = $("sample");
  const errorsList = $("errors"), alertsPre = $("alerts"), diff = $("diff"), state = $("state"), changed = $("changed");
  const running = mappingBox.defaultValue;
  let timer = 0, seq = 0;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  async function translate(body) {
    const resp = await fetch("api/v1/translate", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const ans = await resp.json();
    if (!resp.ok) throw new Error(ans.error || resp.statusText);
    return ans;
  }

  function labelKey(labels) {
    return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
  }

  function showDiff(edited, base) {
    diff.replaceChildren();
    if (mappingBox.value === running) return;
    const byEvent = (ans) => {
      const m = new Map();
      ans.alerts.forEach((a, i) => m.set(ans.alert_events[i], a.labels));
      return m;
    };
    const e = byEvent(edited), b = byEvent(base);
    const distinct = (m) => new Set([...m.values()].map(labelKey)).size;
    const summary = el("p", "", "diff-summary");
    const events = new Set([...e.keys(), ...b.keys()]);
    let same = true;
    const table = el("table", undefined, "kv diff");
    const head = el("tr");
    ["label", "running mapping", "this mapping", ""].forEach((h) => head.append(el("th", h)));
    table.append(head);
    for (const ev of [...events].sort((x, y) => x - y)) {
      const el1 = b.get(ev) || {}, el2 = e.get(ev) || {};
      if (events.size > 1) {
        const r = el("tr");
        const th = el("th", "event " + ev);
        th.colSpan = 4;
        r.append(th);
        table.append(r);
      }
      const names = [...new Set([...Object.keys(el1), ...Object.keys(el2)])].sort();
      for (const n of names) {
        const a = el1[n], c = el2[n];
        const what = a === undefined ? "added" : c === undefined ? "removed" : a === c ? "" : "changed";
        if (what) same = false;
        const r = el("tr", undefined, what ? "diff-" + what : "");
        r.append(el("td", n), el("td", a === undefined ? "—" : a), el("td", c === undefined ? "—" : c), el("td", what));
        table.append(r);
      }
      if (!b.has(ev) || !e.has(ev)) same = false;
    }
    if (same) {
      summary.textContent = "Same labels as the running mapping: these events update the same alerts.";
    } else {
      summary.textContent = "Labels differ from the running mapping: these events make different alerts in Alertmanager.";
      summary.classList.add("bad");
    }
    const nb = distinct(b), ne = distinct(e);
    if (nb !== ne && nb > 0 && ne > 0) {
      summary.textContent += " " + nb + " alert(s) with the running mapping, " + ne + " with this one: " +
        (ne > nb ? "alerts split." : "alerts merge.");
    }
    diff.append(summary, table);
  }

  async function run() {
    const my = ++seq;
    changed.textContent = mappingBox.value === running ? "running mapping" : "edited";
    if (eventBox.value.trim() === "") {
      state.textContent = "(paste an event)";
      return;
    }
    state.textContent = "…";
    try {
      const edited = await translate({ event: eventBox.value, mapping: mappingBox.value });
      const base = mappingBox.value === running ? edited : await translate({ event: eventBox.value });
      if (my !== seq) return;
      errorsList.replaceChildren(...edited.errors.map((e) => {
        const li = el("li", e.message, "error-" + e.kind);
        if (e.kind === "mapping_file" && e.line) li.dataset.line = e.line;
        return li;
      }));
      alertsPre.textContent = edited.alerts.length ? JSON.stringify(edited.alerts, null, 2) : "";
      state.textContent = edited.alerts.length + " alert(s)";
      if (edited.errors.some((e) => e.kind === "mapping_file")) {
        state.textContent = "the mapping does not compile";
        diff.replaceChildren();
      } else {
        showDiff(edited, base);
      }
    } catch (e) {
      if (my !== seq) return;
      errorsList.replaceChildren(el("li", e.message, "error-request"));
      state.textContent = "";
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  }

  async function loadChoices() {
    const [samples, status] = await Promise.all([
      fetch("api/v1/samples", { credentials: "same-origin" }).then((r) => r.json()),
      fetch("api/v1/status", { credentials: "same-origin" }).then((r) => r.json()),
    ]);
    const add = (label, items) => {
      if (!items.length) return;
      const g = document.createElement("optgroup");
      g.label = label;
      items.forEach(([name, value, id]) => {
        const o = el("option", name);
        o.value = value;
        if (id) o.dataset.id = id;
        g.append(o);
      });
      sample.append(g);
    };
    add("Samples", samples.map((s) => [s.name, JSON.stringify(s.event, null, 2)]));
    const recent = (status.recent.events || []).filter((e) => e.outcome !== "rejected");
    const pretty = (s) => {
      try { return JSON.stringify(JSON.parse(s), null, 2); } catch (_) { return s; }
    };
    add("Recent events", recent.map((e) => [e.rule + " (" + e.priority + ", " + new Date(e.received).toLocaleTimeString() + ")", pretty(e.event), String(e.id)]));
    const want = new URLSearchParams(location.hash.slice(1)).get("event");
    const pick = want && sample.querySelector('option[data-id="' + CSS.escape(want) + '"]');
    if (pick) {
      sample.value = pick.value;
      eventBox.value = pick.value;
      run();
    }
  }

  sample.addEventListener("change", () => {
    if (sample.value) {
      eventBox.value = sample.value;
      run();
    }
  });
  eventBox.addEventListener("input", schedule);
  mappingBox.addEventListener("input", schedule);
  $("reset").addEventListener("click", () => {
    mappingBox.value = running;
    run();
  });
  loadChoices().catch((e) => errorsList.replaceChildren(el("li", "loading samples failed: " + e.message)));
  run();
})();
