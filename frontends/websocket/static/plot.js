// RTOC dashboard: drawing a plot on a canvas, and the number and clock formats the page
// shares. Loaded before app.js; everything here is pure drawing of what it is given.
"use strict";

window.RtocPlot = (() => {
  function fmtValue(v) {
    if (v == null) return "–";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(3);
    return String(Number(v.toPrecision(6)));
  }

  const AXIS = { left: 64, right: 12, top: 18, bottom: 22 };  // px around the plot area
  const TIME_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];

  function drawPlot(p, windowS) {
    const { canvas } = p;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const newest = p.series.newest();
    const pw = w - AXIS.left - AXIS.right, ph = h - AXIS.top - AXIS.bottom;
    if (!newest || pw <= 0 || ph <= 0) return;
    const tMax = newest[0], tMin = tMax - windowS;

    // autoscale over the visible window
    const from = p.series.find(tMin);
    let lo = Infinity, hi = -Infinity, count = 0;
    p.series.forEach((t, y) => {
      if (t <= tMax && y === y) {
        if (y < lo) lo = y;
        if (y > hi) hi = y;
        count++;
      }
    }, from);
    if (!count) { lo = -1; hi = 1; }
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    const sx = pw / windowS, sy = ph / (hi - lo);
    const X = (t) => AXIS.left + (t - tMin) * sx;
    const Y = (y) => AXIS.top + (hi - y) * sy;
    const colors = plotColors(canvas);
    drawAxes(ctx, colors, { tMin, tMax, lo, hi, X, Y, w, h, windowS });

    ctx.save();
    ctx.beginPath();
    ctx.rect(AXIS.left, AXIS.top, pw, ph);
    ctx.clip();
    ctx.setTransform(1, 0, 0, 1, 0, 0);  // the trace works in device pixels
    ctx.fillStyle = ctx.strokeStyle = colors.line;
    trace(ctx, p.series, from, tMax, (t) => X(t) * dpr, (y) => Y(y) * dpr, Math.max(1, Math.round(1.25 * dpr)));
    ctx.restore();

    // the latest value above the plot area, on the canvas: a DOM text changing every frame
    // would lay the page out every frame
    const last = Number.isNaN(newest[1]) ? "–" : fmtValue(newest[1]);
    ctx.font = "bold 12px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillStyle = colors.line;
    ctx.fillText(`latest ${last}${p.unit ? " " + p.unit : ""}`, w - AXIS.right, AXIS.top - 3);
    canvas.dataset.points = String(count);  // (read by the tests and the benchmark)
    if (from < p.series.n) canvas.dataset.oldest = String(p.series.at(from));  // (unix s)
  }

  /** The line through the points, per device-pixel column: the column's points become one
   *  bar from their min to their max, joined to the previous column's last value, so a
   *  window of 240 000 points costs one fillRect per column. Only jumps over empty columns
   *  are stroked as segments. (Stroking a path through every point made Chromium's software
   *  rasteriser the bottleneck of bench/run_dashboard.py.) NaN values break the line. */
  function trace(ctx, series, from, tMax, xOf, yOf, lw) {
    let col = NaN, first = 0, lo = 0, hi = 0, last = 0, prevCol = NaN, prevLast = 0;
    ctx.lineWidth = lw;
    ctx.beginPath();
    const bar = () => {
      if (col !== col) return;
      if (prevCol === col - 1) {
        lo = Math.min(lo, prevLast);
        hi = Math.max(hi, prevLast);
      } else if (prevCol === prevCol) {
        ctx.moveTo(prevCol + 0.5, prevLast);
        ctx.lineTo(col + 0.5, first);
      }
      ctx.fillRect(col, lo - lw / 2, lw, hi - lo + lw);
      prevCol = col;
      prevLast = last;
      col = NaN;
    };
    series.forEach((t, y) => {
      if (t > tMax) return;
      if (y !== y) {  // a gap: nothing joins across it
        bar();
        prevCol = NaN;
        return;
      }
      const c = Math.floor(xOf(t)), py = yOf(y);
      if (c !== col) {
        bar();
        col = c;
        first = lo = hi = last = py;
      } else {
        if (py < lo) lo = py;
        if (py > hi) hi = py;
        last = py;
      }
    }, from);
    bar();
    ctx.stroke();
  }

  /** The theme's plot colours (style.css), read once: getComputedStyle costs a style pass. */
  function plotColors(canvas) {
    if (!plotColors.cache) {
      const style = getComputedStyle(canvas);
      plotColors.cache = { line: style.color,
                           text: style.getPropertyValue("--axis-text").trim() || "#888",
                           grid: style.getPropertyValue("--grid").trim() || "#ddd" };
    }
    return plotColors.cache;
  }

  function drawAxes(ctx, colors, a) {
    ctx.font = "11px sans-serif";
    ctx.fillStyle = colors.text;
    ctx.strokeStyle = colors.grid;
    ctx.lineWidth = 1;
    const bottom = a.h - AXIS.bottom, right = a.w - AXIS.right;
    // time axis: wall-clock labels at round steps
    const step = TIME_STEPS.find((s) => a.windowS / s <= 7) || 3600;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.beginPath();
    for (let t = Math.ceil(a.tMin / step) * step; t <= a.tMax; t += step) {
      const x = Math.round(a.X(t)) + 0.5;
      ctx.moveTo(x, AXIS.top);
      ctx.lineTo(x, bottom);
      ctx.fillText(clock(t, step < 1), x, bottom + 4);
    }
    // value axis: about five round numbers
    const ystep = niceStep((a.hi - a.lo) / 5);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(a.lo / ystep) * ystep; v <= a.hi; v += ystep) {
      const y = Math.round(a.Y(v)) + 0.5;
      ctx.moveTo(AXIS.left, y);
      ctx.lineTo(right, y);
      ctx.fillText(fmtValue(Math.abs(v) < ystep * 1e-9 ? 0 : v), AXIS.left - 6, y);
    }
    ctx.stroke();
    ctx.strokeRect(AXIS.left + 0.5, AXIS.top + 0.5, right - AXIS.left - 1, bottom - AXIS.top - 1);
  }

  function niceStep(raw) {
    const mag = 10 ** Math.floor(Math.log10(raw));
    const f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }

  const pad2 = (n) => String(n).padStart(2, "0");

  /** HH:MM:SS (local time) of unix seconds ``t``; with ``tenths`` HH:MM:SS.s. */
  function clock(t, tenths = false) {
    const d = new Date(t * 1000);
    const s = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    return tenths ? `${s}.${Math.floor(d.getMilliseconds() / 100)}` : s;
  }

  return { drawPlot, clock, fmtValue };
})();
