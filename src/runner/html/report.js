// twlab's HTML report: draws the results embedded in #twlab-data. No network, no libraries.
// The body says what happened for a machine that opens it headless: data-ready="1" once
// everything asked for is drawn, data-script-error="..." if a script error happened.
(function () {
  "use strict";
  window.addEventListener("error", function (e) {
    document.body.dataset.scriptError = String(e.message || e);
  });

  const SVG = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("twlab-data").textContent);
  const app = document.getElementById("app");
  // #open-all draws every trial (what a headless check asks for); #trial=NAME shows that one
  // trial alone, open (a link to one case's picture); #trial=NAME&conn=N (or conn=last) also
  // picks the ladder's N-th connection, as numbered in its menu.
  const openAll = location.hash === "#open-all";
  const fragment = new URLSearchParams(location.hash.slice(1));
  const only = fragment.has("trial") ? fragment.get("trial") : null;
  const wantConn = fragment.get("conn");

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function title(node, text) {
    node.append(svg("title", {}, text));
    return node;
  }
  function fmtTime(us) {
    const a = Math.abs(us);
    if (a < 1000) return us + " µs";
    if (a < 1000000) return (us / 1000).toFixed(3) + " ms";
    return (us / 1e6).toFixed(6) + " s";
  }
  function fmtGap(us) {
    if (us < 1000000) return "+" + (us / 1000).toFixed(1) + " ms";
    return "+" + (us / 1e6).toFixed(2) + " s";
  }

  // Declared before anything is drawn: failed trials are drawn as the page builds.
  const STATE_COLORS = {
    ESTABLISHED: "#8ce99a", SYN_SENT: "#d3f9d8", SYN_RECV: "#d3f9d8", NEW_SYN_RECV: "#d3f9d8",
    FIN_WAIT1: "#ffe066", FIN_WAIT2: "#fcc419", TIME_WAIT: "#ff8787", CLOSE_WAIT: "#a5d8ff",
    LAST_ACK: "#4dabf7", CLOSING: "#e599f7", CLOSE: "#ced4da", LISTEN: "#e9ecef",
  };
  const BADGE = { failed: "FAIL", xfail: "xfail", passed: "pass", ignored: "skip" };
  const PALETTE = ["#1864ab", "#c92a2a", "#2b8a3e", "#e67700", "#862e9c", "#0b7285", "#5c940d", "#a61e4d"];

  // ---- the trials, failures first -----------------------------------------------------
  const rank = { failed: 0, xfail: 1, passed: 2, ignored: 3 };
  const trials = [];
  data.sections.forEach(function (section, si) {
    section.results.trials.forEach(function (t, ti) {
      trials.push({ t: t, kernel: section.kernel, si: si, order: ti, link: section.link });
    });
  });
  trials.sort(function (a, b) {
    return rank[a.t.status] - rank[b.t.status] || a.si - b.si || a.order - b.order;
  });
  const dirOf = function (name) {
    const i = name.indexOf("/");
    return i < 0 ? "(top)" : name.slice(0, i);
  };

  // ---- header and filters ------------------------------------------------------------
  const counts = { passed: 0, xfail: 0, failed: 0, ignored: 0 };
  trials.forEach(function (x) { counts[x.t.status] += 1; });
  const kernels = data.sections.map(function (s) { return s.kernel; });
  app.append(el("h1", { text: data.title }));
  app.append(el("div", { class: "meta", text:
    "twlab " + data.twlab + " · " + (kernels.length === 1 ? "kernel " : "kernels ") +
    kernels.join(", ") + " · " + trials.length + " trials" }));
  app.append(el("div", { class: "totals" },
    el("span", { class: "n-passed", text: counts.passed + " passed" }),
    counts.xfail ? el("span", { class: "n-xfail", text: counts.xfail + " xfail" }) : null,
    el("span", { class: "n-failed", text: counts.failed + " failed" }),
    el("span", { class: "n-ignored", text: counts.ignored + " skipped" })));

  if (data.sections.length > 1) app.append(grid());

  const filters = el("div", { class: "filters" });
  const statusBoxes = {};
  ["failed", "xfail", "passed", "ignored"].filter(function (s) {
    return s !== "xfail" || counts.xfail;
  }).forEach(function (s) {
    const box = el("input", { type: "checkbox", "data-status": s });
    box.checked = true;
    statusBoxes[s] = box;
    filters.append(el("label", {}, box, " " + (s === "ignored" ? "skipped" : s) + " (" + counts[s] + ")"));
  });
  const dirs = Array.from(new Set(trials.map(function (x) { return dirOf(x.t.name); }))).sort();
  const dirSelect = el("select", { "aria-label": "directory" }, el("option", { value: "", text: "every directory" }));
  dirs.forEach(function (d) { dirSelect.append(el("option", { value: d, text: d + "/" })); });
  filters.append(dirSelect);
  const kernelSelect = el("select", { "aria-label": "kernel" }, el("option", { value: "", text: "every kernel" }));
  kernels.forEach(function (k) { kernelSelect.append(el("option", { value: k, text: k })); });
  if (kernels.length > 1) filters.append(kernelSelect);
  const search = el("input", { type: "search", placeholder: "filter by name" });
  if (only) search.value = only;
  filters.append(search);
  const shown = el("span", { class: "shown" });
  filters.append(shown);
  app.append(filters);

  const list = el("div", { id: "trials" });
  app.append(list);
  const items = trials.map(function (x) {
    const t = x.t;
    const d = el("details", {
      class: "trial", "data-status": t.status, "data-dir": dirOf(t.name),
      "data-kernel": x.kernel, "data-name": t.name,
    });
    const badge = BADGE[t.status];
    d.append(el("summary", {},
      el("span", { class: "badge " + t.status, text: badge }),
      el("span", { class: "name", text: t.name }),
      kernels.length > 1 ? el("span", { class: "kernel-tag", text: x.kernel }) : null,
      el("span", { class: "secs", text: t.seconds.toFixed(2) + " s" })));
    let built = false;
    const build = function () {
      if (built) return;
      built = true;
      d.append(trialBody(x));
    };
    d.addEventListener("toggle", function () { if (d.open) build(); });
    if (openAll || t.status === "failed" || t.name === only) { d.open = true; build(); }
    list.append(d);
    return d;
  });

  function applyFilters() {
    const q = search.value.trim().toLowerCase();
    let n = 0;
    items.forEach(function (d) {
      const ok = statusBoxes[d.dataset.status].checked &&
        (!dirSelect.value || d.dataset.dir === dirSelect.value) &&
        (!kernelSelect.value || d.dataset.kernel === kernelSelect.value) &&
        (!q || d.dataset.name.toLowerCase().includes(q));
      d.hidden = !ok;
      if (ok) n += 1;
    });
    shown.textContent = n + " of " + items.length + " shown";
  }
  [dirSelect, kernelSelect].forEach(function (s) { s.addEventListener("change", applyFilters); });
  Object.values(statusBoxes).forEach(function (b) { b.addEventListener("change", applyFilters); });
  search.addEventListener("input", applyFilters);
  applyFilters();

  // A case × kernel grid when there are several kernels.
  function grid() {
    const names = [];
    const by = {};
    data.sections.forEach(function (s) {
      s.results.trials.forEach(function (t) {
        if (!(t.name in by)) { by[t.name] = {}; names.push(t.name); }
        by[t.name][s.kernel] = t.status;
      });
    });
    const table = el("table", { class: "grid" });
    const head = el("tr", {}, el("th", { text: "case" }));
    kernels.forEach(function (k) { head.append(el("th", { text: k })); });
    table.append(head);
    names.forEach(function (n) {
      const row = el("tr", {}, el("td", { class: "mono", text: n }));
      kernels.forEach(function (k) {
        const st = by[n][k];
        row.append(el("td", { class: st || "", text: st ? BADGE[st] : "—" }));
      });
      table.append(row);
    });
    return table;
  }

  // ---- one trial ---------------------------------------------------------------------
  function trialBody(x) {
    const t = x.t;
    const p = t.picture;
    const body = el("div", { class: "body" });
    if (p) {
      body.append(el("div", { class: "question", text: p.question }));
      if (p.description) body.append(el("div", { class: "description", text: p.description }));
      if (p.claim) body.append(el("div", { class: "claim", text: "Claim: " + p.claim }));
      body.append(el("div", { class: "note", text: p.file + " · " + p.family +
        (p.topology ? " · topology " + p.topology : "") + " · set-up " + p.setup_ms.toFixed(1) + " ms, steps " + p.run_ms.toFixed(1) + " ms" +
        (t.backend ? " · impairments through " + t.backend : "") }));
    }
    if (t.reason) body.append(el("p", { text: (t.status === "xfail" ? "Expected to fail: " : "Skipped: ") + t.reason }));
    if (p && p.expectations.length) {
      body.append(el("h4", { text: "Expectations" }));
      body.append(expectations(p.expectations));
    } else if (t.failures && t.failures.length) {
      body.append(el("h4", { text: "Why it failed" }));
      body.append(el("pre", { text: t.failures.join("\n") }));
    }
    if (p && p.impairments && p.impairments.length) {
      body.append(el("h4", { text: "Impairments" }));
      body.append(el("pre", { text: p.impairments.join("\n") }));
    }
    if (p && p.ladder) {
      body.append(el("h4", { text: "Packets between the namespaces" }));
      body.append(ladderView(p.ladder));
      if (t.status === "failed") {
        const dir = (x.link ? x.link + "/" : "") + data.artifacts + "/" + t.name.replace(/::/g, "-");
        const links = el("div", { class: "note" }, "pcaps: ");
        p.ladder.links.forEach(function (l, i) {
          if (i) links.append(", ");
          links.append(el("a", { href: dir + "/" + l.ifname + ".pcap", text: l.ifname + ".pcap" }));
        });
        body.append(links);
      }
    }
    if (p && p.samples && p.samples.length) {
      body.append(el("h4", { text: "Sockets by state (sock_diag, each sample a full dump)" }));
      body.append(samplesView(p.samples));
    }
    (t.workloads || []).forEach(function (w) { body.append(workloadView(w)); });
    return body;
  }

  function expectations(list) {
    const table = el("table", { class: "expect" },
      el("tr", {}, el("th", { text: "" }), el("th", { text: "expectation" }),
        el("th", { text: "observed" }), el("th", { text: "where" })));
    list.forEach(function (e) {
      // An xfail mark: failed as foreseen, or held (XPASS, a failure).
      const mark = !e.applies ? ["na", "n/a"]
        : e.xfail && e.passed ? ["xf", "xfail"]
        : e.xfail ? ["bad", "XPASS"]
        : e.passed ? ["ok", "✓"] : ["bad", "✗"];
      const row = el("tr", { class: e.applies && !e.passed ? "failed-row" : "" },
        el("td", { class: mark[0], text: mark[1] }),
        el("td", { class: "mono", text: e.check, title: e.xfail ? "xfail: " + e.xfail : e.why || undefined }),
        el("td", { class: "mono", text: e.observed }),
        el("td", { class: "mono", text: e.at }));
      table.append(row);
    });
    return table;
  }

  // ---- the ladder --------------------------------------------------------------------
  function segColor(s) {
    if (s.flags.includes("RST")) return "#c92a2a";
    if (s.flags.includes("SYN")) return "#2b8a3e";
    if (s.flags.includes("FIN")) return "#1864ab";
    if (s.len > 0) return "#212529";
    return "#868e96";
  }
  function segLabel(s) {
    return s.flags + "  seq=" + s.seq + (s.ack !== undefined && s.ack !== null ? " ack=" + s.ack : "") +
      (s.len ? " len=" + s.len : "");
  }

  function ladderView(ladder) {
    const wrap = el("div", {});
    const controls = el("div", { class: "ladder-controls" });
    const counts = ladder.connections.map(function () { return 0; });
    ladder.segments.forEach(function (s) { counts[s.conn] += 1; });
    let select = null;
    if (ladder.connections.length > 1) {
      select = el("select", { "aria-label": "connection" },
        el("option", { value: "all", text: "every connection (" + ladder.segments.length + " segments)" }));
      ladder.connections.forEach(function (c, i) {
        select.append(el("option", { value: String(i),
          text: "#" + (i + 1) + " " + c.a + " ↔ " + c.b + " on " + ladder.links[c.link].ifname +
            " (" + counts[i] + ")" }));
      });
      controls.append(el("label", {}, "show ", select));
      if (wantConn !== null) {
        const n = wantConn === "last" ? ladder.connections.length : Number(wantConn);
        if (n >= 1 && n <= ladder.connections.length) select.value = String(n - 1);
      }
    }
    wrap.append(controls);
    const holder = el("div", { class: "ladder-wrap" });
    wrap.append(holder);
    const draw = function () {
      holder.replaceChildren(drawLadder(ladder, select ? select.value : "all"));
    };
    if (select) select.addEventListener("change", draw);
    draw();
    const legend = el("div", { class: "legend" });
    const used = new Set(ladder.states.map(function (s) { return s.state; }));
    Object.keys(STATE_COLORS).forEach(function (st) {
      if (used.has(st)) {
        const sw = el("i", {});
        sw.style.background = STATE_COLORS[st];
        legend.append(el("span", {}, sw, st));
      }
    });
    if (used.size) wrap.append(legend);
    const notes = [
      "Time runs down, one row per segment as the tap on the link's first end saw it; long waits are cut (the grey label says how long). seq and ack are relative to each side's first sequence number.",
      "States along each lane are what sock_diag answered, asked after each segment (from 250 µs, backing off to 50 ms): a state shorter than that (FIN_WAIT1 on a link without delay) may not show.",
    ];
    if (ladder.omitted) notes.push(ladder.omitted + " later segments are not drawn (the pcap has them).");
    if (ladder.untracked) notes.push(ladder.untracked + " connections' states were not followed (the poller follows 64).");
    (ladder.notes || []).forEach(function (n) { notes.push(n); });
    notes.forEach(function (n) { wrap.append(el("div", { class: "note", text: n })); });
    return wrap;
  }

  function drawLadder(ladder, which) {
    const LEFT = 96, LANE_GAP = 360, TOP = 44, ROW = 30, DROP = 16, BREAK = 26;
    const laneX = function (i) { return LEFT + 100 + i * LANE_GAP; };
    const segs = ladder.segments.filter(function (s) { return which === "all" || String(s.conn) === which; });
    const rows = [];
    let y = TOP + 12;
    let prev = null;
    const gaps = [];
    segs.forEach(function (s) {
      if (prev !== null && s.at_us - prev > 50000) {
        gaps.push({ y: y + 2, gap: s.at_us - prev });
        y += BREAK;
      }
      rows.push({ t: s.at_us, y: y, s: s });
      prev = s.at_us;
      y += ROW;
    });
    // Time -> y: through each row's time; the end of the trial after the last row.
    const pts = rows.map(function (r) { return [r.t, r.y]; });
    const lastT = pts.length ? pts[pts.length - 1][0] : 0;
    if (ladder.end_us > lastT) {
      const extra = ladder.end_us - lastT > 50000 ? BREAK + ROW : ROW;
      if (extra > ROW) gaps.push({ y: y + 2, gap: ladder.end_us - lastT, end: true });
      pts.push([ladder.end_us, y + extra - ROW]);
      y += extra;
    }
    if (!pts.length) pts.push([0, TOP + 12]);
    const firstT = Math.min(0, pts[0][0]);
    if (firstT < pts[0][0]) pts.unshift([firstT, TOP + 4]);
    const yOf = function (t) {
      if (t <= pts[0][0]) return pts[0][1];
      for (let i = 1; i < pts.length; i++) {
        if (t <= pts[i][0]) {
          const [t0, y0] = pts[i - 1], [t1, y1] = pts[i];
          return t1 === t0 ? y1 : y0 + (y1 - y0) * (t - t0) / (t1 - t0);
        }
      }
      return pts[pts.length - 1][1];
    };
    const height = y + 20;
    const width = laneX(ladder.lanes.length - 1) + 170;
    const root = svg("svg", { class: "ladder", width: width, height: height,
      viewBox: "0 0 " + width + " " + height, "data-segments": segs.length });
    const defs = svg("defs");
    ["#c92a2a", "#2b8a3e", "#1864ab", "#212529", "#868e96"].forEach(function (c) {
      const m = svg("marker", { id: "arrow" + c.slice(1), viewBox: "0 0 10 10", refX: 9, refY: 5,
        markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      m.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: c }));
      defs.append(m);
    });
    root.append(defs);
    root.append(svg("text", { x: 8, y: 20, class: "time" }, "since the first step"));
    ladder.lanes.forEach(function (name, i) {
      const x = laneX(i);
      root.append(svg("text", { x: x, y: 20, "text-anchor": "middle", class: "lane-name" }, name));
      root.append(svg("line", { x1: x, y1: TOP - 8, x2: x, y2: height - 8, stroke: "#adb5bd", "stroke-width": 1 }));
    });
    gaps.forEach(function (g) {
      root.append(svg("line", { x1: LEFT, y1: g.y + 8, x2: width - 10, y2: g.y + 8, stroke: "#dee2e6",
        "stroke-dasharray": "4 4" }));
      root.append(svg("text", { x: 8, y: g.y + 12, class: "gap-label" }, fmtGap(g.gap) + (g.end ? " to the end" : "")));
    });
    // States first, so that arrows are drawn over them.
    const visible = which === "all" ? ladder.connections.map(function (_, i) { return i; }) : [Number(which)];
    const banded = visible.length <= 6 ? visible : visible.slice(0, 6);
    const lastLabel = {};
    ladder.states.forEach(function (st) {
      const k = banded.indexOf(st.conn);
      if (k < 0) return;
      const off = (k - (banded.length - 1) / 2) * 9;
      const x = laneX(st.lane) + off;
      const y1 = yOf(st.from_us);
      const y2 = Math.max(y1 + 3, yOf(st.to_us === undefined || st.to_us === null ? ladder.end_us : st.to_us));
      const band = svg("rect", { x: x - 4, y: y1, width: 8, height: y2 - y1, rx: 2,
        fill: STATE_COLORS[st.state] || "#ced4da", stroke: "#0003", class: "state" });
      title(band, st.state + " from " + fmtTime(st.from_us) +
        (st.to_us === undefined || st.to_us === null ? " to the end" : " to " + fmtTime(st.to_us)) +
        " (connection #" + (st.conn + 1) + ")");
      root.append(band);
      const key = st.lane + ":" + k;
      if (lastLabel[key] === undefined || y1 - lastLabel[key] > 12) {
        // Outside the lanes where there is room: left of the first, right of the others.
        const right = st.lane > 0 || ladder.lanes.length === 1;
        root.append(svg("text", { x: right ? x + 8 : x - 8, y: y1 + 9, class: "state-label",
          "text-anchor": right ? "start" : "end" }, st.state));
        lastLabel[key] = y1;
      }
    });
    if (visible.length > banded.length) {
      root.append(svg("text", { x: 8, y: height - 6, class: "gap-label" },
        "states drawn for the first 6 connections; choose one to see its own"));
    }
    rows.forEach(function (r) {
      const s = r.s;
      const x1 = laneX(s.from), x2 = laneX(s.to);
      const color = segColor(s);
      root.append(svg("text", { x: 8, y: r.y + 4, class: "time" }, fmtTime(s.at_us)));
      const g = svg("g", { class: "seg", "data-conn": s.conn });
      const dir = x2 > x1 ? 1 : -1;
      if (s.dropped) {
        // Cut short where the link took it, with a cross.
        const xe = x1 + (x2 - x1) * 0.7, ye = r.y + DROP * 0.7;
        g.setAttribute("class", "seg dropped");
        g.append(svg("line", { x1: x1 + dir * 6, y1: r.y, x2: xe, y2: ye, stroke: color,
          "stroke-width": 1.4, "stroke-dasharray": "5 3" }));
        g.append(svg("path", { d: "M" + (xe - 6) + "," + (ye - 6) + " l12,12 m0,-12 l-12,12",
          stroke: "#c92a2a", "stroke-width": 2.4 }));
      } else {
        g.append(svg("line", { x1: x1 + dir * 6, y1: r.y, x2: x2 - dir * 6, y2: r.y + DROP, stroke: color,
          "stroke-width": s.flags.includes("RST") ? 2 : 1.4, "marker-end": "url(#arrow" + color.slice(1) + ")" }));
      }
      g.append(svg("text", { x: (x1 + x2) / 2, y: r.y + DROP / 2 - 6, "text-anchor": "middle",
        class: "seg-label", fill: color }, segLabel(s) + (s.dropped ? "  ✕ dropped" : "")));
      const c = ladder.connections[s.conn];
      title(g, fmtTime(s.at_us) + " on " + ladder.links[s.link].ifname + "\n" +
        "connection #" + (s.conn + 1) + " " + c.a + " ↔ " + c.b +
        "\n" + s.flags + " seq=" + s.seq + (s.ack !== undefined && s.ack !== null ? " ack=" + s.ack : "") +
        " len=" + s.len + " win=" + s.win + (s.options ? "\noptions: " + s.options : "") +
        (s.dropped ? "\ndropped on arrival by the case's drop rule (logged to NFLOG)" : ""));
      root.append(g);
    });
    return root;
  }

  // ---- plots -------------------------------------------------------------------------
  function nice(max) {
    if (max <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    const m = max / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function plot(name, xlabel, series, step) {
    const W = 560, H = 230, L = 56, R = 12, T = 24, B = 36;
    const xs = [], ys = [];
    series.forEach(function (s) { s.points.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    const x0 = Math.min.apply(null, xs.concat([0])), x1 = Math.max.apply(null, xs.concat([x0 + 1e-9]));
    const y1 = nice(Math.max.apply(null, ys.concat([0])));
    const X = function (v) { return L + (W - L - R) * (v - x0) / (x1 - x0 || 1); };
    const Y = function (v) { return H - B - (H - T - B) * v / y1; };
    const root = svg("svg", { width: W, height: H + 18 * Math.ceil(series.length / 3), class: "plot" });
    root.append(svg("text", { x: L, y: 14, class: "lane-name" }, name));
    for (let i = 0; i <= 4; i++) {
      const v = y1 * i / 4, y = Y(v);
      root.append(svg("line", { x1: L, y1: y, x2: W - R, y2: y, stroke: "#e9ecef" }));
      root.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "time" }, String(+v.toPrecision(3))));
    }
    for (let i = 0; i <= 5; i++) {
      const v = x0 + (x1 - x0) * i / 5;
      root.append(svg("text", { x: X(v), y: H - B + 16, "text-anchor": "middle", class: "time" }, String(+v.toPrecision(3))));
    }
    root.append(svg("text", { x: (L + W) / 2, y: H - 4, "text-anchor": "middle", class: "time" }, xlabel));
    series.forEach(function (s, i) {
      const c = PALETTE[i % PALETTE.length];
      let d = "";
      s.points.forEach(function (p, j) {
        if (j === 0) d += "M" + X(p[0]) + "," + Y(p[1]);
        else if (step) d += "H" + X(p[0]) + "V" + Y(p[1]);
        else d += "L" + X(p[0]) + "," + Y(p[1]);
      });
      const path = svg("path", { d: d, fill: "none", stroke: c, "stroke-width": 1.6, class: "series" });
      title(path, s.name);
      root.append(path);
      if (s.points.length === 1) {
        root.append(svg("circle", { cx: X(s.points[0][0]), cy: Y(s.points[0][1]), r: 3, fill: c }));
      }
      const lx = L + (i % 3) * 170, ly = H + 8 + 18 * Math.floor(i / 3);
      root.append(svg("rect", { x: lx, y: ly - 9, width: 10, height: 10, fill: c }));
      root.append(svg("text", { x: lx + 14, y: ly, class: "time" }, s.name));
    });
    return root;
  }

  function samplesView(samples) {
    const keys = new Set();
    samples.forEach(function (s) {
      Object.entries(s.counts).forEach(function ([ns, by]) {
        Object.keys(by).forEach(function (st) { keys.add(ns + " " + st); });
      });
    });
    const cols = Array.from(keys).sort();
    if (samples.length >= 2 && cols.length) {
      const series = cols.map(function (k) {
        const [ns, st] = k.split(" ");
        return { name: k, points: samples.map(function (s) {
          return [s.at_us / 1e6, (s.counts[ns] && s.counts[ns][st]) || 0];
        }) };
      });
      return el("div", { class: "plots" }, plot("sockets by state", "seconds since the first step", series, true),
        samplesTable(samples, cols));
    }
    return samplesTable(samples, cols);
  }
  function samplesTable(samples, cols) {
    const table = el("table", { class: "expect" });
    const head = el("tr", {}, el("th", { text: "sample" }), el("th", { text: "at" }));
    cols.forEach(function (c) { head.append(el("th", { text: c })); });
    table.append(head);
    samples.forEach(function (s) {
      const row = el("tr", {}, el("td", { class: "mono", text: s.label }), el("td", { class: "mono", text: fmtTime(s.at_us) }));
      cols.forEach(function (c) {
        const [ns, st] = c.split(" ");
        row.append(el("td", { class: "mono", text: String((s.counts[ns] && s.counts[ns][st]) || 0) }));
      });
      table.append(row);
    });
    if (!cols.length) return el("div", { class: "note", text: "no sockets in any sample" });
    return table;
  }

  function workloadView(w) {
    const div = el("div", {});
    const outcomes = Object.entries(w.outcomes).map(function ([k, v]) { return k + " " + v; }).join(", ");
    div.append(el("h4", { text: "Workload " + w.label + ": " + outcomes +
      " in " + (w.total_ms / 1000).toFixed(2) + " s (interval " + w.interval_ms + " ms)" }));
    const t = function (iv) { return iv.start_ms / 1000; };
    const per = [
      { name: "attempts", points: w.intervals.map(function (iv) { return [t(iv), iv.attempts]; }) },
      { name: "ok", points: w.intervals.map(function (iv) { return [t(iv), iv.ok]; }) },
    ];
    const errs = new Set();
    w.intervals.forEach(function (iv) { Object.keys(iv.errors || {}).forEach(function (e) { errs.add(e); }); });
    errs.forEach(function (e) {
      per.push({ name: e, points: w.intervals.map(function (iv) { return [t(iv), (iv.errors || {})[e] || 0]; }) });
    });
    const gauges = [{ name: "in flight", points: w.intervals.map(function (iv) { return [t(iv), iv.in_flight]; }) }];
    if (w.intervals.some(function (iv) { return iv.ports_in_use !== undefined && iv.ports_in_use !== null; })) {
      gauges.push({ name: "ports in use", points: w.intervals.map(function (iv) { return [t(iv), iv.ports_in_use || 0]; }) });
    }
    const nss = new Set();
    w.intervals.forEach(function (iv) { Object.keys(iv.ns || {}).forEach(function (n) { nss.add(n); }); });
    nss.forEach(function (n) {
      const pick = function (f) { return w.intervals.map(function (iv) { return [t(iv), iv.ns && iv.ns[n] ? f(iv.ns[n]) : 0]; }); };
      gauges.push({ name: n + " TIME_WAIT", points: pick(function (g) { return g.time_wait; }) });
      if (w.intervals.some(function (iv) { return iv.ns && iv.ns[n] && iv.ns[n].conntrack !== undefined && iv.ns[n].conntrack !== null; })) {
        gauges.push({ name: n + " conntrack", points: pick(function (g) { return g.conntrack || 0; }) });
      }
    });
    div.append(el("div", { class: "plots" },
      plot("connections per interval", "seconds since the workload started", per, false),
      plot("sockets and ports", "seconds since the workload started", gauges, false)));
    return div;
  }

  document.body.dataset.ready = "1";
})();
