// RTOC dashboard: the signal table, live plots, devices and events over the RTOC JSON
// protocol (docs/PROTOCOL.md). Plain browser JavaScript, no build step, no libraries: the
// page must work offline from the server that serves it.
//
// Every text that came from the server goes into the page through textContent (never
// innerHTML), so signal names, event texts and driver docs cannot inject markup.
"use strict";

(() => {
  const { drawPlot, clock, fmtValue } = window.RtocPlot;  // plot.js, loaded first
  const POLL_MS = 1000;        // signal table refresh (getSignalInfo)
  const PLUGIN_MS = 5000;      // device list refresh (getPluginList)
  const RECONNECT_MS = 2000;
  const MAX_PLOTS = 4;
  const MAX_EVENTS = 500;
  const PLOT_CAPACITY = 1 << 18;  // points kept per plot: 2 min at the engine's 2000 points/s
  const HISTORY_POINTS = 4000;    // points a plot asks of history: min/max pairs for 2000 px
  const RANK = { none: 0, read: 1, write: 2, admin: 3 };
  const PRIORITY = ["info", "warning", "error"];

  const $ = (id) => document.getElementById(id);

  /** A new element; ``props`` sets properties (className, textContent, title, ...). */
  function el(tag, props = {}, children = []) {
    const e = Object.assign(document.createElement(tag), props);
    for (const c of children) e.append(c);
    return e;
  }

  // -- connection: one socket, replies matched to requests by order ------------------------
  const conn = { ws: null, up: false, pending: [] };
  const state = { role: "none", credentials: null };

  function connect() {
    setConn("connecting…", false);
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/");
    conn.ws = ws;
    ws.onopen = () => {
      conn.up = true;
      setConn("connected", true);
      onConnected();
    };
    ws.onmessage = (e) => onMessage(e.data);
    ws.onclose = () => {  // (an error is always followed by close, so only close reconnects)
      conn.up = false;
      conn.ws = null;
      for (const p of conn.pending.splice(0)) p.reject(new Error("connection closed"));
      setConn("disconnected: retrying every 2 s", false);
      setTimeout(connect, RECONNECT_MS);
    };
  }

  function setConn(text, up) {
    const badge = $("conn");
    badge.textContent = text;
    badge.className = "badge " + (up ? "conn-up" : "conn-down");
    document.body.classList.toggle("offline", !up);
  }

  /** Send one message; resolves with its reply. The server answers in request order, so
   *  the oldest pending request owns the next message that carries "error". */
  function request(msg) {
    return new Promise((resolve, reject) => {
      if (!conn.up) return reject(new Error("not connected"));
      conn.pending.push({ resolve, reject });
      conn.ws.send(JSON.stringify(msg));
    });
  }

  /** ``request`` that throws the server's error text and returns the reply's ``key``. */
  async function call(msg, key) {
    const reply = await request(msg);
    if (reply.error) throw new Error(reply.message || JSON.stringify(reply.errors));
    return reply[key];
  }

  function onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if ("dropped" in msg) showDropped(msg.dropped);
    if ("error" in msg) {  // replies always have "error"; pushes never do
      const p = conn.pending.shift();
      if (p) p.resolve(msg);
    } else if (msg.view) {
      plots.onView(msg.view);
    } else if (msg.event) {
      events.add(msg.event);
    }
  }

  function showDropped(n) {
    const badge = $("dropped");
    badge.hidden = !n;
    badge.textContent = `dropped: ${n}`;
    badge.title = "pushes the server dropped because this page did not read them fast enough";
  }

  // -- session and login ----------------------------------------------------------------------
  async function onConnected() {
    if (state.credentials) {  // a reconnect after a login: log in again (a failure leaves us anonymous)
      await call({ login: state.credentials }, "login").catch((e) => console.warn("login:", e));
    }
    await loadSession().catch((e) => console.warn("session:", e));
  }

  /** Who we are and everything the panels start from. Without a login, ``logout`` comes
   *  first: harmless, and the one command that reports the role even when it is "none". */
  async function loadSession() {
    const msg = state.credentials ? { getSession: true } : { logout: true, getSession: true };
    const reply = await request(msg);
    const session = reply.session;
    setIdentity(session ? session.user : null,
                session ? session.role : reply.logout ? reply.logout.role : "none");
    if (!session) return;
    devices.render(session.pluginList);
    events.load(session.events);
    await request({ subscribeView: plots.names(), eventLevel: events.level });
    await table.poll();
  }

  function setIdentity(user, role) {
    state.role = role;
    $("who").textContent = `${user || "anonymous"} · ${role}`;
    $("logout").hidden = !user;
    $("login-toggle").hidden = !!user;
    document.body.classList.toggle("no-access", role === "none");
    document.body.classList.toggle("can-write", may("write"));
    if (role === "none") $("login").hidden = false;
    devices.setEditable(may("write"));
  }

  const may = (role) => RANK[state.role] >= RANK[role];

  async function submitLogin(e) {
    e.preventDefault();
    const creds = { user: $("login-user").value, password: $("login-password").value };
    const msgEl = $("login-msg");
    try {
      const result = await call({ login: creds }, "login");
      if (!result.authorized) return showMsg(msgEl, "wrong user or password", true);
      state.credentials = creds;  // in memory only: to log in again after a reconnect
      $("login-password").value = "";
      $("login").hidden = true;
      showMsg(msgEl, "");
      await loadSession();
    } catch (err) {
      showMsg(msgEl, err.message, true);
    }
  }

  function logout() {
    state.credentials = null;  // loadSession then sends logout
    loadSession().catch((e) => console.warn("logout:", e));
  }

  /** ``fn`` as a poll: skipped while its previous call is still out (a slow server gets
   *  fewer requests, not a queue of them), or when there is nothing to read. */
  function single(fn) {
    let busy = false;
    return async () => {
      if (busy || !conn.up || !may("read")) return;
      busy = true;
      try {
        await fn();
      } catch (e) {
        console.warn(e);
      } finally {
        busy = false;
      }
    };
  }

  function showMsg(target, text, isError = false) {
    target.textContent = text;
    target.classList.toggle("error", isError);
  }

  // -- signal table: rows keyed by name, cells touched only when their text changes ---------
  // Only the rows in view are in the document: 1000 attached rows cost Chromium up to
  // 100 ms of layout and paint per update (bench/run_dashboard.py), 40 rows almost nothing.
  const COLUMNS = ["device", "signal", "value", "unit", "rate", "age", "lost"];
  const NAME_COLUMNS = ["device", "signal", "unit"];
  const ROW_H = 24;  // px: the height of .sig-row in style.css
  const table = {
    rows: new Map(),   // "Dev.Sig" -> row (attached or not)
    shown: [],         // the rows that pass the filter, in sort order
    attached: [],      // the rows in the document now
    sortKey: null,     // set by sortBy at start
    sortDir: 1,
    filter: "",
    body: null,
    wrap: null,

    poll: single(async () => table.update(await call({ getSignalInfo: true }, "signalInfo"),
                                          Date.now() / 1000)),

    update(info, now) {
      let changed = false;
      for (const name in info) {
        let row = table.rows.get(name);
        if (!row) {
          row = table.makeRow(name, info[name]);
          changed = true;
        }
        table.fill(row, info[name], now);
      }
      for (const name of table.rows.keys()) {
        if (!(name in info)) {
          table.rows.delete(name);
          changed = true;
        }
      }
      // live columns reorder on every update; name columns only when rows came or went
      if (changed || !NAME_COLUMNS.includes(table.sortKey)) table.arrange();
    },

    makeRow(name, s) {
      const node = el("div", { className: "sig-row" });
      node.setAttribute("role", "row");
      node.dataset.name = name;
      const row = { name, node, cells: {}, text: {}, key: {}, hay: `${name} ${s.unit}`.toLowerCase() };
      for (const col of COLUMNS) row.cells[col] = node.appendChild(el("span", { className: "col-" + col }));
      node.classList.toggle("plotted", plots.has(name));
      table.rows.set(name, row);
      return row;
    },

    fill(row, s, now) {
      const value = s.latest ? s.latest[1] : null;
      const age = s.latest ? Math.max(0, now - s.latest[0]) : Infinity;
      row.latestT = s.latest ? s.latest[0] : null;
      row.key = { device: s.device, signal: s.signal, unit: s.unit, value, rate: s.rate, age, lost: s.lost };
      const text = { device: s.device, signal: s.signal, value: fmtValue(value), unit: s.unit,
                     rate: fmtRate(s.rate), age: fmtAge(age), lost: String(s.lost) };
      for (const col of COLUMNS) {
        if (row.text[col] !== text[col]) {  // most cells stay as they are: leave them alone
          row.text[col] = text[col];
          row.cells[col].textContent = text[col];
        }
      }
      row.node.classList.toggle("has-lost", s.lost > 0);
    },

    /** Filter and sort the rows into ``shown``, then attach those in view. */
    arrange() {
      const k = table.sortKey, dir = table.sortDir;
      const words = table.filter.toLowerCase().split(/\s+/).filter(Boolean);
      table.shown = [...table.rows.values()]
        .filter((row) => words.every((w) => row.hay.includes(w)))
        .sort((a, b) => dir * compare(a.key[k], b.key[k]) || collator.compare(a.name, b.name));
      const n = table.shown.length, total = table.rows.size;
      $("signal-count").textContent = n === total ? `${total} signal${total === 1 ? "" : "s"}` : `${n} of ${total}`;
      table.body.style.height = `${n * ROW_H}px`;  // the scroll bar covers every row
      table.render();
    },

    /** Attach the rows in view, and a few on each side so a scroll shows no blank. */
    render() {
      const first = Math.max(0, Math.floor(table.wrap.scrollTop / ROW_H) - 10);
      const rows = table.shown.slice(first, first + Math.ceil(table.wrap.clientHeight / ROW_H) + 20);
      if (rows.length === table.attached.length && rows.every((r, i) => r === table.attached[i])) return;
      table.attached = rows;
      table.body.style.paddingTop = `${first * ROW_H}px`;
      table.body.replaceChildren(...rows.map((r) => r.node));
    },

    sortBy(key) {
      table.sortDir = table.sortKey === key ? -table.sortDir : 1;
      table.sortKey = key;
      for (const th of document.querySelectorAll("#signals [data-key]")) {
        th.classList.toggle("sorted", th.dataset.key === key);
        th.classList.toggle("desc", th.dataset.key === key && table.sortDir < 0);
      }
      table.arrange();
    },
  };

  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  /** Numbers by value, text naturally (S2 before S10), missing values (null, NaN) last. */
  function compare(a, b) {
    const missA = a == null || Number.isNaN(a), missB = b == null || Number.isNaN(b);
    if (missA || missB) return missA - missB;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return collator.compare(String(a), String(b));
  }

  function fmtRate(r) {
    if (!r) return "0";
    if (r >= 1e6) return (r / 1e6).toFixed(2) + " M";
    if (r >= 1e4) return (r / 1e3).toFixed(1) + " k";
    return r < 10 ? r.toFixed(1) : String(Math.round(r));
  }

  function fmtAge(s) {
    if (!Number.isFinite(s)) return "–";
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  // -- plots: a rolling window of view points per signal, drawn on canvas ---------------------
  /** Ring buffer of (t, y) points; y NaN is a gap. Float64 because t is unix seconds. */
  class Series {
    constructor(capacity) {
      this.t = new Float64Array(capacity);
      this.y = new Float64Array(capacity);
      this.head = 0;   // next write position
      this.n = 0;
    }
    push(xs, ys) {
      const cap = this.t.length;
      for (let i = 0; i < xs.length; i++) {
        this.t[this.head] = xs[i];
        this.y[this.head] = ys[i] == null ? NaN : ys[i];
        this.head = (this.head + 1) % cap;
      }
      this.n = Math.min(cap, this.n + xs.length);
    }
    /** The time of the k-th point, oldest first. */
    at(k) {
      return this.t[(this.head - this.n + k + this.t.length) % this.t.length];
    }
    /** The first point at or after ``t``: a binary search, since views come in time order,
     *  so a frame reads only the visible window, not the whole buffer. */
    find(t) {
      let lo = 0, hi = this.n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.at(mid) < t) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    /** Calls fn(t, y) for the points from the k-th on, oldest first. */
    forEach(fn, k = 0) {
      const cap = this.t.length;
      let i = (this.head - this.n + k + cap) % cap;
      for (; k < this.n; k++) {
        fn(this.t[i], this.y[i]);
        if (++i === cap) i = 0;
      }
    }
    newest() {
      const i = (this.head - 1 + this.t.length) % this.t.length;
      return this.n ? [this.t[i], this.y[i]] : null;
    }
    /** Put the points of ``xs`` (time order) older than the oldest held before the held
     *  ones: history arrives after the first live views. The newest points win the room. */
    prepend(xs, ys) {
      const cap = this.t.length;
      const oldest = this.n ? this.at(0) : Infinity;
      let k = 0;
      while (k < xs.length && xs[k] < oldest) k++;
      if (!k) return;
      const t = new Float64Array(cap), y = new Float64Array(cap);
      let j = 0;
      for (let i = Math.max(0, k - (cap - this.n)); i < k; i++, j++) {
        t[j] = xs[i];
        y[j] = ys[i] == null ? NaN : ys[i];
      }
      this.forEach((tt, yy) => { t[j] = tt; y[j] = yy; j++; });
      this.t = t;
      this.y = y;
      this.n = j;
      this.head = j % cap;
    }
  }

  const plots = {
    list: [],           // {name, series, box, canvas, title, unit, dirty}
    frameRequested: false,

    names: () => plots.list.map((p) => p.name),
    has: (name) => plots.list.some((p) => p.name === name),

    /** Click on a table row: plot the signal, or stop plotting it. */
    toggle(name) {
      const i = plots.list.findIndex((p) => p.name === name);
      if (i >= 0) plots.remove(plots.list[i]);
      else {
        if (plots.list.length >= MAX_PLOTS) plots.remove(plots.list[0]);
        plots.add(name);
      }
      plots.resubscribe();
    },

    add(name) {
      const canvas = el("canvas", { className: "plot-canvas" });
      const title = el("span", { className: "plot-title", textContent: name });
      const close = el("button", { type: "button", className: "plot-close", textContent: "×",
                                   title: "stop plotting " + name });
      const box = el("div", { className: "plot" }, [el("div", { className: "plot-head" }, [title, close]), canvas]);
      box.dataset.name = name;
      const plot = { name, series: new Series(PLOT_CAPACITY), box, canvas, title, unit: "", dirty: true };
      close.onclick = () => { plots.remove(plot); plots.resubscribe(); };
      plots.list.push(plot);
      $("plots").append(box);
      plots.resizeObserver.observe(canvas);
      plots.changed();
      plots.fill(plot);
    },

    /** Fill the window from history (the ring, then the archive) before the oldest point
     *  held: a plot opens with the last window's points, not empty, and a widened window
     *  gets its older part. Live views go on arriving meanwhile; prepend keeps them. */
    async fill(plot) {
      const row = table.rows.get(plot.name);
      const end = (row && row.latestT) || Date.now() / 1000;  // the server's clock if known
      const xmin = end - Number($("window").value);
      const oldest = plot.series.n ? plot.series.at(0) : Infinity;
      if (xmin >= oldest || !conn.up || !may("read")) return;
      const dot = plot.name.indexOf(".");
      const want = { dname: plot.name.slice(0, dot), sname: plot.name.slice(dot + 1), xmin,
                     maxN: HISTORY_POINTS };
      if (oldest !== Infinity) want.xmax = oldest;
      try {
        const got = (await call({ getSignal: want }, "signals"))[plot.name];
        if (!got || !plots.list.includes(plot)) return;
        plot.series.prepend(got[0], got[1]);
        if (got[2] && !plot.unit) {
          plot.unit = got[2];
          plot.title.textContent = `${plot.name} [${got[2]}]`;
        }
        plot.dirty = true;
        plots.request();
      } catch (err) {
        console.warn(`no history for ${plot.name}: ${err.message}`);
      }
    },

    remove(plot) {
      plots.list.splice(plots.list.indexOf(plot), 1);
      plots.resizeObserver.unobserve(plot.canvas);
      plot.box.remove();
      plots.changed();
    },

    changed() {
      $("plots-empty").hidden = plots.list.length > 0;
      for (const row of table.rows.values()) row.node.classList.toggle("plotted", plots.has(row.name));
      plots.request();
    },

    resubscribe() {
      if (conn.up && may("read")) request({ subscribeView: plots.names() }).catch(() => {});
    },

    onView(v) {
      const plot = plots.list.find((p) => p.name === v.name);
      if (!plot || !v.x.length) return;
      plot.series.push(v.x, v.y);
      if (v.unit && v.unit !== plot.unit) {
        plot.unit = v.unit;
        plot.title.textContent = `${plot.name} [${v.unit}]`;
      }
      plot.dirty = true;
      plots.request();
    },

    /** Draw at the next frame, once, and only the plots that got data (or were resized). */
    request() {
      if (plots.frameRequested) return;
      plots.frameRequested = true;
      requestAnimationFrame(() => {
        plots.frameRequested = false;
        const windowS = Number($("window").value);
        for (const p of plots.list) {
          if (p.dirty) {
            p.dirty = false;
            drawPlot(p, windowS);
          }
        }
      });
    },

    redrawAll() {
      for (const p of plots.list) p.dirty = true;
      plots.request();
    },
  };
  plots.resizeObserver = new ResizeObserver(() => plots.redrawAll());

  // -- events: newest first, bounded, filtered by priority ------------------------------------
  const events = {
    items: [],        // {ev, li}, newest first
    seen: new Set(),  // keys of the listed events (the list and the pushes overlap)
    level: 0,

    /** ``getEventList``'s map: evID -> [dname, sname, evID, text, x, value, priority, id]. */
    load(list) {
      const evs = Object.values(list || {}).map((e) => ({
        dname: e[0], sname: e[1], text: e[3], x: e[4], value: e[5], priority: e[6], id: e[7] }));
      evs.sort((a, b) => a.x - b.x);
      for (const ev of evs.slice(-MAX_EVENTS)) events.add(ev);
    },

    add(ev) {
      // eventId differs between the list and the pushes, so events are told apart by content
      const key = `${ev.x}|${ev.dname}|${ev.sname}|${ev.id}|${ev.text}`;
      if (events.seen.has(key)) return;
      events.seen.add(key);
      const li = events.render(ev);
      let i = 0;  // usually 0: pushes arrive newest last
      while (i < events.items.length && events.items[i].ev.x > ev.x) i++;
      $("events").insertBefore(li, events.items[i] ? events.items[i].li : null);
      events.items.splice(i, 0, { ev, li, key });
      while (events.items.length > MAX_EVENTS) {
        const old = events.items.pop();
        old.li.remove();
        events.seen.delete(old.key);
      }
      events.count();
    },

    render(ev) {
      const prio = Math.max(0, Math.min(2, ev.priority | 0));
      const source = [ev.dname, ev.sname].filter(Boolean).join(".");
      const li = el("li", { className: `event prio-${prio}` }, [
        el("time", { textContent: Number.isFinite(ev.x) ? clock(ev.x) : "–",
                     title: Number.isFinite(ev.x) ? new Date(ev.x * 1000).toISOString() : "" }),
        el("span", { className: "badge prio", textContent: PRIORITY[prio] }),
        el("span", { className: "source", textContent: source }),
        el("span", { className: "text", textContent: ev.text }),
      ]);
      if (ev.value != null) li.append(el("span", { className: "value", textContent: `= ${fmtValue(ev.value)}` }));
      if (ev.id) li.title = `id: ${ev.id}`;
      li.hidden = prio < events.level;
      return li;
    },

    count() {
      const shown = events.items.filter((i) => !i.li.hidden).length;
      $("event-count").textContent = `${shown} shown`;
    },

    /** The server then pushes only events at or above the level; the list is fetched again
     *  because lower ones missed while the level was higher are not pushed afterwards. */
    async setLevel(level) {
      events.level = level;
      for (const item of events.items) item.li.hidden = (item.ev.priority | 0) < level;
      events.count();
      if (!conn.up || !may("read")) return;
      try {
        events.load(await call({ eventLevel: level, getEventList: true }, "events"));
      } catch (e) {
        console.warn("events:", e);
      }
    },
  };

  // -- devices: start/stop, parameters, functions ---------------------------------------------
  const devices = {
    cards: new Map(),   // driver name -> card
    editable: false,

    refresh: single(async () => devices.render(await call({ getPluginList: true }, "pluginList"))),

    /** Again shortly after a change: ``start`` answers before the driver runs. */
    refreshSoon() {
      setTimeout(devices.refresh, 300);
      setTimeout(devices.refresh, 1500);
    },

    /** Update the cards in place, so an input being edited keeps its text and focus. */
    render(list) {
      for (const name of Object.keys(list).sort()) {
        const card = devices.cards.get(name) || devices.makeCard(name);
        devices.fill(card, list[name]);
      }
      for (const [name, card] of devices.cards) {
        if (!(name in list)) {
          card.root.remove();
          devices.cards.delete(name);
        }
      }
    },

    makeCard(name) {
      const card = {
        name, params: new Map(), fnKey: null,
        state: el("span", { className: "badge device-state" }),
        toggle: el("button", { type: "button", className: "device-toggle needs-write" }),
        info: el("span", { className: "muted" }),
        paramBody: el("tbody"),
        fnBox: el("div", { className: "functions" }),
        msg: el("div", { className: "msg" }),
      };
      card.root = el("div", { className: "device" }, [
        el("div", { className: "device-head" }, [el("h3", { textContent: name }), card.state, card.info, card.toggle]),
        el("table", { className: "params" }, [card.paramBody]),
        card.fnBox, card.msg]);
      card.root.dataset.name = name;
      card.toggle.onclick = () => devices.op(card, "start", !card.running);
      devices.cards.set(name, card);
      $("devices").append(card.root);
      return card;
    },

    fill(card, d) {
      card.running = !!d.status;
      card.state.textContent = d.state;
      card.state.className = `badge device-state state-${d.state}`;
      card.info.textContent = d.info || "";
      card.toggle.textContent = card.running ? "Stop" : "Start";
      for (const [pname, value, doc] of d.parameters) devices.fillParam(card, pname, value, doc);
      const fnKey = JSON.stringify(d.functions);
      if (fnKey !== card.fnKey) {  // functions rarely change: rebuild only then
        card.fnKey = fnKey;
        card.fnBox.replaceChildren(...d.functions.map((f) => devices.makeFunction(card, f)));
      }
      devices.setEditable(devices.editable);
    },

    fillParam(card, pname, value, doc) {
      let p = card.params.get(pname);
      if (!p) {
        const input = typeof value === "boolean"
          ? el("input", { type: "checkbox" })
          : el("input", { type: "text", spellcheck: false });
        input.className = "param";
        input.dataset.param = pname;
        p = { input, value };
        input.onchange = () => devices.setParam(card, pname, p);
        card.paramBody.append(el("tr", { title: doc || "" }, [
          el("th", { textContent: pname }), el("td", {}, [input])]));
        card.params.set(pname, p);
      }
      p.value = value;
      // never overwrite what the user is typing
      if (document.activeElement === p.input) return;
      if (p.input.type === "checkbox") p.input.checked = !!value;
      else {
        const text = typeof value === "string" ? value : JSON.stringify(value);
        if (p.input.value !== text) p.input.value = text;
      }
    },

    setParam(card, pname, p) {
      let value;
      try {
        value = typedValue(p.value, p.input);
      } catch (e) {
        return showMsg(card.msg, `${pname}: ${e.message}`, true);
      }
      devices.op(card, pname, value);
    },

    makeFunction(card, f) {
      const [fname, , , varnames, , doc, signature] = f;
      const args = el("input", { type: "text", className: "fn-args", spellcheck: false,
                                 placeholder: `[${(varnames || []).join(", ")}]`,
                                 title: "arguments as JSON, e.g. [1.5] or [\"sine\"]" });
      const button = el("button", { type: "button", className: "fn-call", textContent: `${fname}()`,
                                    title: `${signature || fname}\n${doc || ""}` });
      button.onclick = () => {
        let list;
        try {
          list = args.value.trim() ? JSON.parse(args.value) : [];
        } catch {
          return showMsg(card.msg, `${fname}: the arguments are not JSON (e.g. [1.5])`, true);
        }
        devices.op(card, `${fname}()`, Array.isArray(list) ? list : [list]);
      };
      return el("div", { className: "fn needs-write" }, [button, args]);
    },

    /** One ``plugin`` command; shows its result (or error) on the card. */
    async op(card, key, value) {
      try {
        const reply = await call({ plugin: { [card.name]: { [key]: value } } }, "plugin");
        const result = reply[card.name][key];
        if (result && typeof result === "object" && "error" in result) {
          showMsg(card.msg, `${key}: ${result.error}`, true);
        } else if (key === "start") {  // (its reply is the state before the change)
          showMsg(card.msg, value ? "starting…" : "stopped");
        } else {
          showMsg(card.msg, `${key} → ${JSON.stringify(result)}`);
        }
      } catch (e) {
        showMsg(card.msg, `${key}: ${e.message}`, true);
      }
      devices.refreshSoon();
    },

    setEditable(on) {
      devices.editable = on;
      for (const card of devices.cards.values()) {
        for (const p of card.params.values()) p.input.disabled = !on;
      }
    },
  };

  /** The input's text as the parameter's type: numbers stay numbers, bools bools. */
  function typedValue(old, input) {
    if (typeof old === "boolean") return input.checked;
    const text = input.value.trim();
    if (typeof old === "number") {
      const v = Number(text);
      if (text === "" || !Number.isFinite(v)) throw new Error(`${JSON.stringify(text)} is not a number`);
      return v;
    }
    if (typeof old === "string") return input.value;
    return JSON.parse(text);  // lists, maps, null: as JSON
  }

  // -- wiring ---------------------------------------------------------------------------------
  function start() {
    table.body = $("signal-rows");
    table.wrap = $("signals");
    table.wrap.addEventListener("scroll", table.render, { passive: true });
    table.body.addEventListener("click", (e) => {
      const node = e.target.closest(".sig-row");
      if (node) plots.toggle(node.dataset.name);
    });
    for (const th of document.querySelectorAll("#signals [data-key]")) th.onclick = () => table.sortBy(th.dataset.key);
    table.sortBy("device");
    $("filter").addEventListener("input", (e) => {
      table.filter = e.target.value;
      table.arrange();
    });
    $("window").onchange = () => {
      plots.redrawAll();
      for (const p of plots.list) plots.fill(p);  // a wider window: its older part
    };
    $("event-level").onchange = (e) => events.setLevel(Number(e.target.value));
    $("login").addEventListener("submit", submitLogin);
    $("login-toggle").onclick = () => { $("login").hidden = !$("login").hidden; };
    $("logout").onclick = logout;
    plots.changed();
    events.count();
    setInterval(table.poll, POLL_MS);
    setInterval(devices.refresh, PLUGIN_MS);
    connect();
  }

  start();
})();
