// simgate console: fills the pages from the admin API and refreshes them in place.
// No framework and no build step; every value goes into the page as text, never as HTML.
"use strict";

(() => {
  const page = document.body.dataset.page;
  const csrfMeta = document.querySelector('meta[name="csrf"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const tz = -new Date().getTimezoneOffset();
  const statusLine = document.getElementById("status");

  // -- helpers -----------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function say(text, bad) {
    if (!statusLine) return;
    statusLine.textContent = text;
    statusLine.classList.toggle("bad", !!bad);
  }

  async function api(path, options) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json", Accept: "application/json" },
      ...(options || {}),
    });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("signed out");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.error || response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const rub = (kopecks) =>
    kopecks === null || kopecks === undefined
      ? "–"
      : (kopecks / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " ₽";
  // Money in hundredths of its currency; RUB keeps its sign, others their ISO letters.
  const money = (amount, currency) =>
    !currency || currency === "RUB"
      ? rub(amount)
      : amount === null || amount === undefined
        ? "–"
        : (amount / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " " + currency;
  // A SIM's lane: the one marketplace that counts and issues it while free; "a → b" while it moves.
  const lane = (n) => (n.lane || "none") + (n.lane_target ? " → " + n.lane_target : "");
  const sellsOn = (n) => (n.marketplaces.length ? n.marketplaces.join(", ") : "all");
  const pct = (rate) => (rate === null || rate === undefined ? "–" : Math.round(rate * 100) + "%");

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }
  const ago = (ts) => (ts ? duration(Date.now() / 1000 - ts) + " ago" : "never");
  function clock(ts) {
    if (!ts) return "–";
    const d = new Date(ts * 1000);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }
  const badge = (text, kind) => el("span", { class: "badge " + (kind || text) }, text.replace("_", " "));

  function every(ms, refresh) {
    let busy = false;
    async function tick() {
      // A refresh redraws the rows: never under an open block picker.
      if (busy || document.hidden || (document.activeElement && document.activeElement.matches(".block-picker"))) return;
      busy = true;
      try {
        await refresh();
        say("Updated " + new Date().toLocaleTimeString());
      } catch (error) {
        say("Refresh failed: " + error.message, true);
      } finally {
        busy = false;
      }
    }
    tick();
    setInterval(tick, ms);
    document.addEventListener("visibilitychange", () => document.hidden || tick());
    return tick;
  }

  // On a phone each row is shown as a card (console.css): every cell carries its column's
  // name, taken from the table's own header so the two cannot disagree.
  function label(table) {
    const names = table.tHead ? [...table.tHead.rows[0].cells].map((th) => th.textContent.trim()) : [];
    for (const row of table.tBodies[0] ? table.tBodies[0].rows : []) {
      [...row.cells].forEach((td, i) => {
        if (!td.classList.contains("empty") && names[i]) td.dataset.label = names[i];
      });
    }
    return table;
  }

  function fill(tbody, rows, columns, empty) {
    tbody.replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: columns }, empty))]),
    );
    label(tbody.closest("table"));
  }

  // Taking a SIM off sale costs money until someone turns it back on: ask first.
  function disableButton(n, done) {
    return el("button", { class: "small danger", type: "button", dataset: { action: "disable", id: n.id },
      onclick: (e) => {
        if (!confirm("Disable " + n.phone + "? It is not offered to any marketplace until you enable it again.")) return;
        act(e.currentTarget, "/api/numbers/" + n.id + "/disable", null, done);
      } }, "Disable");
  }

  // "Why not offered?": the rules that keep the SIM off each marketplace, with their times
  // (GET /api/numbers/{id}/why, the same answer as `simgate numbers why`).
  function whyButton(n) {
    const out = el("ul", { class: "why muted", dataset: { id: n.id } });
    const button = el("button", { class: "link", type: "button", title: "Why is this SIM not offered?",
      onclick: async () => {
        button.disabled = true;
        try {
          const body = await api("/api/numbers/" + n.id + "/why");
          out.replaceChildren(...body.marketplaces.map((m) =>
            el("li", { dataset: { marketplace: m.marketplace } }, m.marketplace + ": " +
              (m.offered ? "offered" : m.reasons.map((r) => r.text).join("; ")))));
        } catch (error) { say(error.message, true); } finally { button.disabled = false; }
      } }, "why not offered?");
    return el("div", {}, button, out);
  }

  // The block picker offers the catalogue's names only, so a typo cannot block nothing.
  let catalogue = null;
  function services() {
    catalogue = catalogue || api("/api/services").then((body) => body.services).catch((error) => {
      catalogue = null;
      throw error;
    });
    return catalogue;
  }

  function blockPicker(n, done) {
    const taken = new Set([...n.blocked_services, ...(n.sold_services || [])]);
    const picker = el("select", { class: "block-picker", "aria-label": "Block a service on " + n.phone,
      title: "Block a service for activations on this SIM", dataset: { id: n.id } },
      el("option", { value: "" }, "+ block…"));
    services().then((names) => {
      picker.append(...names.filter((name) => !taken.has(name)).map((name) => el("option", { value: name }, name)));
    }).catch((error) => say(error.message, true));
    picker.addEventListener("change", () => {
      const service = picker.value;
      if (service) act(picker, "/api/numbers/" + n.id + "/blacklist", { body: JSON.stringify({ service }) }, done);
    });
    return picker;
  }

  async function act(button, path, options, done) {
    button.disabled = true;
    try {
      await api(path, { method: "POST", ...(options || {}) });
      say("Done.");
      if (done) await done();
    } catch (error) {
      say(error.message, true);
      alert(error.message);
    } finally {
      button.disabled = false;
    }
  }

  // A filter form mirrored in the address bar, with paging; `load(params)` draws the table.
  function listing(load, pageSize) {
    const form = document.getElementById("filters");
    const url = new URL(location.href);
    let offset = Number(url.searchParams.get("offset") || 0);
    for (const field of form.elements) {
      const value = url.searchParams.get(field.name);
      if (value === null) continue;
      if (field.type === "checkbox") field.checked = value === "1" || value === "true";
      else field.value = value;
    }
    function params() {
      const out = new URLSearchParams();
      for (const field of form.elements) {
        if (!field.name) continue;
        if (field.type === "checkbox") {
          if (field.checked) out.set(field.name, field.value || "1");
        } else if (field.value.trim()) out.set(field.name, field.value.trim());
      }
      return out;
    }
    async function refresh() {
      const query = params();
      const shown = new URLSearchParams(query);
      if (offset) shown.set("offset", offset);
      history.replaceState(null, "", location.pathname + (shown.toString() ? "?" + shown : ""));
      query.set("limit", pageSize);
      query.set("offset", offset);
      const body = await load(query);
      document.getElementById("total").textContent = body.total;
      const last = Math.min(offset + body.items.length, body.total);
      document.getElementById("range").textContent = body.total ? offset + 1 + "–" + last + " of " + body.total : "";
      document.getElementById("prev").disabled = offset === 0;
      document.getElementById("next").disabled = offset + pageSize >= body.total;
    }
    let timer = null;
    const again = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        offset = 0;
        tick();
      }, 250);
    };
    form.addEventListener("input", again);
    form.addEventListener("change", again);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      again();
    });
    document.getElementById("prev").addEventListener("click", () => {
      offset = Math.max(0, offset - pageSize);
      tick();
    });
    document.getElementById("next").addEventListener("click", () => {
      offset += pageSize;
      tick();
    });
    const tick = every(10000, refresh);
    return tick;
  }

  // -- overview ----------------------------------------------------------------------------

  function overview() {
    let chart = null;
    const box = document.getElementById("earnings-chart");

    // Away from the cursor (and on a phone, which has none) the legend shows the latest day
    // instead of blanks; under the cursor it shows the day pointed at.
    function latest(u) {
      if (u.cursor.idx === null || u.cursor.idx === undefined) u.setLegend({ idx: u.data[0].length - 1 });
    }

    function draw(days) {
      const xs = days.map((d) => d.start);
      const ys = days.map((d) => d.earnings_kopecks / 100);
      const data = [xs, ys];
      if (chart) {
        chart.setData(data);
        latest(chart);
        return;
      }
      if (typeof uPlot === "undefined") return;
      const style = getComputedStyle(document.documentElement);
      const accent = style.getPropertyValue("--accent").trim() || "#2563eb";
      const muted = style.getPropertyValue("--muted").trim() || "#667085";
      const line = style.getPropertyValue("--line").trim() || "#e2e5ea";
      const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line } };
      chart = new uPlot(
        {
          width: Math.max(260, box.clientWidth),
          height: 240,
          legend: { show: true },
          cursor: { drag: { x: false, y: false } },
          hooks: { ready: [latest], setCursor: [latest] },
          scales: { x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [axis, { ...axis, size: 60, values: (u, ticks) => ticks.map((v) => v.toLocaleString() + " ₽") }],
          series: [
            { label: "Day", value: (u, v) => (v ? new Date(v * 1000).toLocaleDateString() : "") },
            {
              label: "Earned",
              stroke: accent,
              fill: accent + "55",
              width: 1,
              paths: uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined,
              points: { show: false },
              value: (u, v) => (v === null || v === undefined ? "–" : v.toFixed(2) + " ₽"),
            },
          ],
        },
        data,
        box,
      );
      new ResizeObserver(() => chart.setSize({ width: Math.max(260, box.clientWidth), height: 240 })).observe(box);
    }

    const set = (id, value) => {
      document.getElementById(id).textContent = value;
    };

    async function refresh() {
      const o = await api("/api/overview?tz=" + tz);
      set("sims-online", o.numbers.free + o.numbers.busy);
      set("sims-free", o.numbers.free);
      set("sims-busy", o.numbers.busy);
      set("sims-offline", o.numbers.offline);
      set("sims-disabled", o.numbers.disabled);
      set("sims-total", o.numbers.total);
      // Per currency, added up over the marketplaces that paid in it; never across currencies.
      const earned = (amountKey, soldKey) => {
        const by = new Map();
        for (const m of o.by_marketplace) {
          for (const c of m.money) {
            const t = by.get(c.currency) || { amount: 0, sold: 0 };
            t.amount += c[amountKey];
            t.sold += c[soldKey];
            by.set(c.currency, t);
          }
        }
        const parts = [...by.entries()].sort(([a], [b]) => (a === "RUB" ? -1 : b === "RUB" ? 1 : a.localeCompare(b)));
        return {
          text: parts.length ? parts.map(([currency, t]) => money(t.amount, currency)).join(" + ") : rub(0),
          sold: parts.reduce((sum, [, t]) => sum + t.sold, 0),
        };
      };
      const today = earned("earnings_today", "sold_today");
      const month = earned("earnings_30d", "sold_30d");
      set("earned-today", today.text);
      set("sold-today", today.sold);
      set("earned-30d", month.text);
      set("sold-30d", month.sold);
      document.getElementById("first-run").hidden = o.numbers.total > 0;
      set("push-pending", o.pushes.pending);
      set("push-oldest", o.pushes.oldest_pending_age_seconds === null ? "none" : duration(o.pushes.oldest_pending_age_seconds));
      set("push-failed", o.pushes.failed);
      set("losing-total", o.losing_total);
      // Open alerts: what the webhook and Telegram were told (or would be, with a channel set).
      document.getElementById("alerts").hidden = o.alerts_total === 0;
      set("alerts-total", o.alerts_total);
      document.getElementById("alert-list").replaceChildren(
        ...o.alerts.map((a) =>
          el("li", { dataset: { alert: a.key } },
            el("span", {}, a.text),
            el("span", { class: "muted" }, a.since === null ? " · now" : " · for " + duration(o.now - a.since)),
          ),
        ),
      );
      const more = document.getElementById("alerts-more");
      more.hidden = o.alerts_total <= o.alerts.length;
      more.textContent = "and " + (o.alerts_total - o.alerts.length) + " more (simgate status lists them all)";
      const ops = document.querySelector("#ops-24h tbody");
      const labels = { open: "open", sold: "sold", cancelled: "cancelled", refunded: "refunded", not_taken: "not taken", other: "other" };
      fill(
        ops,
        Object.entries(o.operations_24h).map(([status, count]) =>
          el("tr", {}, el("td", {}, badge(labels[status] || status, status)), el("td", { class: "num" },
            el("a", { href: "/operations?status=" + status }, count))),
        ),
        2,
        "",
      );
      const losing = document.querySelector("#losing tbody");
      fill(
        losing,
        o.losing.map((n) =>
          el("tr", {},
            el("td", {}, el("a", { href: "/operations?number_id=" + n.id }, n.phone)),
            el("td", { class: "hide-phone" }, n.port || "–"),
            el("td", { class: "hide-phone" }, badge(n.state)),
            el("td", {}, n.losing.map((why) => el("span", { class: "flag" }, why))),
            el("td", {}, n.enabled ? disableButton(n, tick) : el("span", { class: "muted" }, "disabled")),
          ),
        ),
        5,
        "None: every SIM that worked recently got its SMS.",
      );
      const perCurrency = (m, sold, earned) =>
        m.money.length ? m.money.map((c) => el("div", {}, money(c[earned], c.currency) + " · " + c[sold] + " sold")) : "–";
      fill(
        document.querySelector("#by-marketplace tbody"),
        o.by_marketplace.map((m) =>
          el("tr", { dataset: { marketplace: m.marketplace } },
            el("td", {}, el("a", { href: "/operations?marketplace=" + encodeURIComponent(m.marketplace) }, m.marketplace)),
            el("td", { class: "num" }, m.free_sims),
            el("td", { class: "num" }, m.open),
            el("td", { class: "num" }, m.opened_24h),
            el("td", { class: "num" }, perCurrency(m, "sold_today", "earnings_today")),
            el("td", { class: "num" }, perCurrency(m, "sold_30d", "earnings_30d")),
          ),
        ),
        6,
        "No marketplace has sold or holds SIMs yet.",
      );
      draw(o.earnings_30d);
    }
    const tick = every(5000, refresh);

    async function byService() {
      const st = await api("/api/stats?days=30&top=1&tz=" + tz);
      const sold = st.by_service.filter((g) => g.opened > 0).sort((a, b) => b.earnings_kopecks - a.earnings_kopecks);
      fill(
        document.querySelector("#by-service tbody"),
        sold.map((g) =>
          el("tr", { dataset: { service: g.key } },
            el("td", {}, el("a", { href: "/operations?service=" + encodeURIComponent(g.key) }, g.key)),
            el("td", { class: "num" }, g.sold + " / " + g.finished),
            el("td", { class: "num" }, pct(g.success_rate)),
            el("td", { class: "num" }, rub(g.earnings_kopecks)),
          ),
        ),
        4,
        "No operation in the last 30 days.",
      );
    }
    every(30000, byService);
  }

  // -- SIMs ----------------------------------------------------------------------------------

  function sims() {
    const tbody = document.querySelector("#sims tbody");
    const tick = listing(async (query) => {
      const body = await api("/api/numbers?" + query);
      fill(
        tbody,
        body.items.map((n) => {
          const toggle = n.enabled
            ? disableButton(n, tick)
            : el("button", { class: "small secondary", type: "button", dataset: { action: "enable", id: n.id },
                onclick: (e) => act(e.currentTarget, "/api/numbers/" + n.id + "/enable", null, tick) }, "Enable");
          const blocked = n.blocked_services.map((service) =>
            el("span", { class: "chip" }, service,
              el("button", { class: "link", type: "button", title: "Unblock " + service,
                onclick: async (e) => {
                  e.currentTarget.disabled = true;
                  try {
                    await api("/api/numbers/" + n.id + "/blacklist/" + encodeURIComponent(service), { method: "DELETE" });
                    await tick();
                  } catch (error) { alert(error.message); }
                } }, "×")));
          const add = blockPicker(n, tick);
          return el("tr", { dataset: { id: n.id, phone: n.phone } },
            el("td", {}, el("a", { href: "/operations?number_id=" + n.id, title: "Operations of this SIM" }, n.phone),
              n.losing.map((why) => el("span", { class: "flag" }, "⚠ " + why))),
            el("td", {}, badge(n.state),
              n.open_operation_marketplace
                ? el("a", { class: "muted", href: "/operations/" + n.open_operation_id }, " on " + n.open_operation_marketplace)
                : null),
            el("td", {}, lane(n), el("div", { class: "muted" }, "sells on " + sellsOn(n)), whyButton(n)),
            el("td", {}, n.country + " / " + (n.operator || "any")),
            el("td", {}, n.port || "–"),
            el("td", {}, n.last_sms_at ? el("a", { href: "/sms?number_id=" + n.id }, ago(n.last_sms_at)) : "never"),
            el("td", { class: "num" }, n.operations),
            el("td", { class: "num" }, rub(n.earnings_kopecks)),
            el("td", { class: "num" }, pct(n.success_rate)),
            el("td", {}, blocked, add),
            el("td", {}, toggle),
          );
        }),
        11,
        "No SIM matches.",
      );
      return body;
    }, 50);
  }

  // -- operations ------------------------------------------------------------------------------

  function operations() {
    const tbody = document.querySelector("#operations tbody");
    listing(async (query) => {
      const body = await api("/api/operations?" + query);
      fill(
        tbody,
        body.items.map((o) =>
          el("tr", { class: "clickable", dataset: { id: o.id }, onclick: () => (location.href = "/operations/" + o.id) },
            el("td", {}, el("a", { href: "/operations/" + o.id }, o.id)),
            el("td", {}, clock(o.opened_at)),
            el("td", {}, o.marketplace),
            el("td", {}, o.kind),
            el("td", {}, o.service || "rent"),
            el("td", {}, o.phone),
            el("td", {}, badge(o.status)),
            el("td", { class: "num" }, o.sms),
            el("td", { class: "num" }, money(o.status === "sold" ? o.earned_kopecks : o.offered_kopecks, o.currency)),
          ),
        ),
        9,
        "No operation matches.",
      );
      return body;
    }, 50);
  }

  function attemptsTable(attempts) {
    if (!attempts.length) return el("p", { class: "muted" }, "No push attempt yet.");
    return el("div", { class: "scroll" },
      label(el("table", { class: "compact attempts" },
        el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "At"), el("th", {}, "HTTP"),
          el("th", {}, "Outcome"), el("th", {}, "Latency"), el("th", {}, "Answer"))),
        el("tbody", {}, attempts.map((a) =>
          el("tr", {},
            el("td", {}, a.number),
            el("td", {}, clock(a.started_at)),
            el("td", {}, a.http_status === null ? "–" : a.http_status),
            el("td", {}, badge(a.outcome)),
            el("td", { class: "num" }, Math.round(a.latency_ms) + " ms"),
            el("td", { class: "text" }, a.error || a.response || ""),
          ))),
      )));
  }

  function operation() {
    const id = document.body.dataset.id;
    async function refresh() {
      let d;
      try {
        d = await api("/api/operations/" + id);
      } catch (error) {
        if (error.status !== 404) throw error;
        // An old link or one from another farm: say so, instead of an empty page.
        document.querySelector("main").replaceChildren(
          el("p", {}, el("a", { href: "/operations" }, "← Operations")),
          el("h1", {}, "Operation " + id),
          el("section", { class: "card empty-state" }, el("p", {}, "There is no operation " + id + " in this farm's database. Find it in ",
            el("a", { href: "/operations" }, "Operations"), " by phone or service.")),
        );
        return;
      }
      const o = d.operation;
      const status = document.getElementById("op-status");
      status.className = "badge " + o.status;
      status.textContent = o.status.replace("_", " ");
      const facts = [
        ["Kind", o.kind], ["Service", o.service || "rent (any sender)"], ["Phone", o.phone],
        ["SIM", d.number ? (d.number.port || "–") + " · " + d.number.state : "–"],
        ["SIM lane", d.number ? lane(d.number) + " (sells on " + sellsOn(d.number) + ")" : "–"],
        ["Country / operator", o.country + " / " + o.operator],
        ["Opened", clock(o.opened_at)], ["Finished", o.finished_at ? clock(o.finished_at) : "still open"],
        ["FINISH status", o.finish_status === null ? "–" : o.finish_status + " (" + o.status + ")"],
        ["Offered", money(o.offered_kopecks, o.currency)], ["Paid", money(o.final_kopecks, o.currency)],
        ["Earned", money(o.earned_kopecks, o.currency)],
        ["FINISH requests", o.finish_requests], ["Marketplace", o.marketplace],
      ];
      document.getElementById("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
      document.getElementById("timeline").replaceChildren(
        ...d.timeline.map((e) => el("li", { class: "kind-" + e.kind }, el("time", {}, new Date(e.at * 1000).toLocaleTimeString()), el("span", {}, e.text))),
      );
      const box = document.getElementById("messages");
      if (!d.messages.length) {
        box.replaceChildren(el("p", { class: "muted" }, "No SMS yet."));
        return;
      }
      box.replaceChildren(...d.messages.map((m) =>
        el("div", { class: "sms-block", dataset: { id: m.id } },
          el("div", {}, el("strong", {}, m.sender), " · ", clock(m.stored_at), " · ",
            m.delivery ? badge(m.delivery.state) : badge("not pushed", "warn"),
            m.delivery && m.delivery.reason ? el("span", { class: "muted" }, " " + m.delivery.reason) : null),
          el("p", { class: "text" }, m.text),
          attemptsTable(m.attempts),
        )));
    }
    every(5000, refresh);
  }

  // -- SMS and pushes ----------------------------------------------------------------------------

  function sms() {
    const tbody = document.querySelector("#sms tbody");
    listing(async (query) => {
      const body = await api("/api/sms?" + query);
      fill(
        tbody,
        body.items.map((m) => {
          const last = m.attempts[m.attempts.length - 1];
          return el("tr", { dataset: { id: m.id } },
            el("td", {}, clock(m.stored_at)),
            el("td", {}, m.phone),
            el("td", {}, m.sender),
            el("td", { class: "text" }, m.text),
            el("td", {}, m.operation_id ? el("a", { href: "/operations/" + m.operation_id }, "operation " + m.operation_id)
              : el("span", { class: "muted", title: m.routing }, "none")),
            el("td", {}, m.delivery ? badge(m.delivery.state) : "–",
              last ? el("span", { class: "muted" }, " " + m.attempts.length + " attempt(s), last " + (last.http_status || last.error || "")) : null),
          );
        }),
        6,
        "No SMS matches.",
      );
      return body;
    }, 50);
  }

  function deliveries() {
    const tbody = document.querySelector("#deliveries tbody");
    const tick = listing(async (query) => {
      const body = await api("/api/deliveries?" + query);
      fill(
        tbody,
        body.items.map((d) => {
          const last = d.attempts[d.attempts.length - 1];
          return el("tr", { dataset: { id: d.id } },
            el("td", {}, d.id),
            el("td", {}, el("a", { href: "/operations/" + d.operation_id }, d.operation_id), " ", el("span", { class: "muted" }, d.service || "rent")),
            el("td", { class: "text" }, d.sender + ": " + d.text),
            el("td", {}, badge(d.state), d.reason ? el("span", { class: "muted" }, " " + d.reason) : null),
            el("td", { class: "num" }, d.attempt_count),
            el("td", {}, last ? (last.http_status || "–") + " " + (last.error || last.response || "") : "–"),
            el("td", {}, d.state === "pending" ? duration(d.age_seconds) : clock(d.finished_at)),
            el("td", {}, d.retryable
              ? el("button", { class: "small", type: "button", dataset: { action: "retry", id: d.id },
                  onclick: (e) => act(e.currentTarget, "/api/deliveries/" + d.id + "/retry", null, tick) }, "Retry")
              : null),
          );
        }),
        8,
        "No push matches.",
      );
      return body;
    }, 50);
  }

  // -- hardware ----------------------------------------------------------------------------------

  function hardware() {
    const box = document.getElementById("drivers");
    const empty = document.getElementById("hardware-empty");
    const unwatchedBox = document.getElementById("unwatched-box");
    // Ages come from the server's clock: a phone with a wrong clock still reads them right.
    const since = (age) => (age === null ? "never" : duration(age) + " ago");
    const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");

    function signal(kind, value) {
      if (value === null) return "–";
      if (kind === "goip" || kind === "modem") return value === 99 ? "unknown" : value + "/31";
      return String(value);
    }

    function state(d) {
      if (d.silent) {
        return badge(d.last_contact === null ? "never heard" : "silent " + duration(d.last_contact_age_seconds), "warn");
      }
      if (!d.reports_on_its_own) {
        return d.last_contact === null ? badge("waiting for an SMS", "idle") : badge("ok", "ok");
      }
      return d.last_contact === null ? badge("starting", "idle") : badge("reporting", "ok");
    }

    function portRow(d, p) {
      const cell = (label, ...content) => el("td", { "data-label": label }, ...content);
      return el("tr", { class: p.failing ? "port-error" : null, dataset: { port: p.port } },
        cell("Port", el("strong", {}, p.port)),
        cell("Phone", p.phone || el("span", { class: "muted" }, "unknown")),
        cell("Online", p.online === null ? el("span", { class: "muted" }, "not reported")
          : p.online ? badge("online", "ok") : badge("offline")),
        cell("Signal", signal(d.kind, p.signal)),
        cell("Registration", p.registration || "–"),
        cell("ICCID", p.iccid ? el("span", { class: "mono", title: p.imsi ? "IMSI " + p.imsi : null }, p.iccid) : "–"),
        cell("Last contact", p.last_contact === null ? "never"
          : el("span", { title: clock(p.last_contact) }, since(p.last_contact_age_seconds))),
        cell("Last error", p.last_error
          ? el("span", { class: p.failing ? "error" : "muted", title: p.last_error_at ? clock(p.last_error_at) : null }, p.last_error)
          : el("span", { class: "muted" }, "none")),
      );
    }

    function driverCard(d) {
      const error = d.last_error
        ? el("span", { class: d.recent_error ? "error" : "muted" }, d.last_error,
            el("span", { class: "muted when" }, " at " + clock(d.last_error_at) + " (" + since(d.last_error_age_seconds) + ")"))
        : el("span", { class: "muted" }, "none");
      const facts = [
        ["Last contact", d.last_contact === null ? "never since simgate started"
          : since(d.last_contact_age_seconds) + " · " + clock(d.last_contact)],
        ["Last error", error],
        ["SMS", d.received + " received · " + plural(d.duplicates, "duplicate") + " · " + d.rejected + " rejected"],
        // A source that only hands over SMS (HTTP intake) says nothing of its SIMs: "0 of 0
        // online" would read as a dead farm. Imported SIMs count as online (CONTRACT.md).
        ["SIMs", !d.reports_on_its_own && !d.ports.length
          ? el("span", { class: "muted" }, "not reported by this source; imported SIMs count as online")
          : d.ports_online + " of " + d.ports_total + " online"
            + (d.ports_with_errors ? " · " + d.ports_with_errors + " with errors" : "")],
      ];
      for (const c of d.clock_skew || []) {
        // The device's clock, not simgate's: its received_at is far from ours (README, "Clock skew").
        facts.push(["Clock", el("span", { class: "error clock-skew", dataset: { source: c.source } },
          c.source + " clock " + duration(Math.abs(c.offset_seconds)) + (c.offset_seconds < 0 ? " behind" : " ahead")
          + " (last SMS " + clock(c.at) + ")")]);
      }
      const ports = d.ports.length
        ? el("div", { class: "scroll" },
            el("table", { class: "rows ports" },
              el("thead", {}, el("tr", {}, ["Port", "Phone", "Online", "Signal", "Registration", "ICCID", "Last contact", "Last error"]
                .map((h) => el("th", {}, h)))),
              el("tbody", {}, d.ports.map((p) => portRow(d, p)))))
        : d.reports_on_its_own ? el("p", { class: "muted" }, "No SIM reported yet.") : null;
      const classes = ["card", "driver", d.silent ? "silent" : null, d.recent_error ? "has-error" : null];
      return el("section", { class: classes.filter(Boolean).join(" "), dataset: { name: d.name, kind: d.kind } },
        el("div", { class: "driver-head" }, el("h2", {}, d.name), badge(d.kind, "kind"), state(d)),
        el("dl", { class: "facts" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
        ports,
      );
    }

    function healthRow(m) {
      const result = m.ok === null ? badge("not checked yet", "idle")
        : m.ok ? badge("ok", "ok")
        : el("span", {}, badge(m.failures > 1 ? "failing ×" + m.failures : "failed", "warn"), " ", el("span", { class: "error" }, m.error || ""));
      return el("tr", { dataset: { marketplace: m.marketplace } },
        el("td", { "data-label": "Marketplace" }, el("strong", {}, m.marketplace)),
        el("td", { "data-label": "Check" }, el("span", { title: m.url }, m.check + " every " + duration(m.every_seconds))),
        el("td", { "data-label": "Last result" }, result),
        el("td", { "data-label": "When" }, m.at === null ? "–" : el("span", { title: clock(m.at) }, since(m.age_seconds))),
        el("td", { "data-label": "Latency", class: "num" }, m.latency_ms === null ? "–" : Math.round(m.latency_ms) + " ms"),
      );
    }

    async function refresh() {
      const h = await api("/api/hardware");
      const health = h.marketplaces || [];
      document.getElementById("market-health-box").hidden = health.length === 0;
      document.querySelector("#market-health tbody").replaceChildren(...health.map(healthRow));
      document.getElementById("silent-after").textContent = duration(h.silent_after_seconds);
      // /intake/sms alone is no hardware: keep saying how to configure some.
      empty.hidden = h.drivers.some((d) => d.kind !== "http");
      box.replaceChildren(...h.drivers.map(driverCard));
      unwatchedBox.hidden = h.unwatched.length === 0;
      document.getElementById("unwatched").replaceChildren(
        ...h.unwatched.map((u) => el("li", { dataset: { name: u.name } }, el("code", {}, "[hardware." + u.name + "]"), " ", u.note)),
      );
    }
    every(5000, refresh);
  }

  const pages = { overview, sims, operations, operation, sms, deliveries, hardware };
  if (pages[page]) pages[page]();
})();
