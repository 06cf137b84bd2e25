// Line charts as SVG built from data: a UTC time axis, a hover readout (bin, time, value), NaN
// drawn as a gap, units in the axis label, colours from the theme (light and dark).
import { svg, el, fmt, binStart, utc, hhmm, extent } from './util.js';

const W = 560;
const H = 170;
const M = { l: 52, r: 12, t: 24, b: 30 };
// Tick spacings in minutes: a time axis gets about six of them.
const STEPS = [5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 40320];

function niceTicks(lo, hi, n) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Draws a chart into `node`. data: {title, unit, grid, offset (first bin, default 0), cursor (a
 * bin to mark), lines: [{id, label, values, dash}], band: {lo, hi} (optional shaded range), zero
 * (draw y = 0), stacked (the lines without `dash` are piled up, each filled down to the one
 * below it, e.g. per-class parts under their dashed total)}. Each line's <path> carries
 * `data-series` and `data-values` (its own values, not the pile; null for NaN).
 */
export function lineChart(data, node) {
  const { grid, lines } = data;
  const offset = data.offset || 0;
  const n = Math.max(0, ...lines.map((l) => l.values.length), data.band ? data.band.lo.length : 0);
  // What each line draws: its values, or, stacked, the running sum of the parts up to it.
  let below = null;
  const tops = lines.map((l) => {
    if (!data.stacked || l.dash) return l.values;
    const top = Float64Array.from(l.values, (v, i) => (below ? below[i] : 0) + v);
    below = top;
    return top;
  });
  let [lo, hi] = extent([...tops, ...(data.band ? [data.band.lo, data.band.hi] : [])]);
  if (lo > 0) lo = 0;
  if (hi < 0) hi = 0;
  if (lo === hi) hi = lo + 1;
  const yt = niceTicks(lo, hi, 4);
  lo = Math.min(lo, yt[0]);
  hi = Math.max(hi, yt[yt.length - 1]);
  const x = (i) => M.l + ((W - M.l - M.r) * i) / Math.max(1, n - 1);
  const y = (v) => M.t + (H - M.t - M.b) * (1 - (v - lo) / (hi - lo));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': data.title });

  // Axes: y ticks with the unit, x ticks at round UTC times.
  for (const v of yt) {
    root.append(svg('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
    root.append(svg('text', { class: 'tick', x: M.l - 4, y: y(v) + 3, 'text-anchor': 'end', text: fmt(v) }));
  }
  const minutes = Number(grid.binMinutes) || 1;
  const t0 = binStart(grid, offset);
  if (Number.isFinite(t0) && n > 1) {
    const span = (n - 1) * minutes;
    const step = STEPS.find((s) => span / s <= 7) || STEPS[STEPS.length - 1];
    const first = Math.ceil(t0 / 60000 / step) * step * 60000;
    for (let t = first; t <= t0 + span * 60000; t += step * 60000) {
      const i = (t - t0) / 60000 / minutes;
      const label = step >= 1440 ? utc(t).slice(5, 10) : hhmm(t);
      root.append(svg('line', { class: 'grid', x1: x(i), x2: x(i), y1: M.t, y2: H - M.b }));
      root.append(svg('text', { class: 'tick', x: x(i), y: H - M.b + 12, 'text-anchor': 'middle', text: label }));
    }
    root.append(svg('text', { class: 'axis', x: W - M.r, y: H - 4, 'text-anchor': 'end', text: `time (UTC, ${utc(t0).slice(0, 10)})` }));
  } else {
    root.append(svg('text', { class: 'axis', x: W - M.r, y: H - 4, 'text-anchor': 'end', text: 'bin' }));
  }
  root.append(svg('text', { class: 'axis', x: 4, y: 12, text: `${data.title}${data.unit ? ` (${data.unit})` : ''}` }));
  if (lo < 0 && hi > 0) root.append(svg('line', { class: 'zero', x1: M.l, x2: W - M.r, y1: y(0), y2: y(0) }));

  if (data.band) {
    const { lo: bl, hi: bh } = data.band;
    let d = '';
    for (let i = 0; i < bl.length; i++) d += `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(bh[i]).toFixed(1)}`;
    for (let i = bl.length - 1; i >= 0; i--) d += `L${x(i).toFixed(1)},${y(bl[i]).toFixed(1)}`;
    root.append(svg('path', { class: 'band', d: `${d}Z` }));
  }
  // Lines: a NaN bin ends the current segment (a gap); a lone finite bin is a dot.
  let floor = null;
  lines.forEach((l, k) => {
    let d = '';
    let open = false;
    const vals = tops[k];
    if (data.stacked && !l.dash) {
      // The area between this part's top and the one below (NaN bins left out).
      const base = (i) => (floor ? floor[i] : 0);
      const ok = (i) => Number.isFinite(vals[i]) && Number.isFinite(base(i));
      let a = '';
      for (let i = 0; i < vals.length; i++) {
        if (!ok(i)) continue;
        let j = i;
        while (j + 1 < vals.length && ok(j + 1)) j++;
        for (let t = i; t <= j; t++) a += `${t === i ? 'M' : 'L'}${x(t).toFixed(1)},${y(vals[t]).toFixed(1)}`;
        for (let t = j; t >= i; t--) a += `L${x(t).toFixed(1)},${y(base(t)).toFixed(1)}`;
        a += 'Z';
        i = j;
      }
      root.append(svg('path', { class: `area s${k % 6}`, d: a }));
      floor = vals;
    }
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i];
      if (!Number.isFinite(v)) { open = false; continue; }
      const lone = !open && !(i + 1 < vals.length && Number.isFinite(vals[i + 1]));
      d += `${open ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      if (lone) d += 'h0.01';
      open = true;
    }
    root.append(svg('path', {
      class: `line s${k % 6}${l.dash ? ' dash' : ''}`,
      d,
      'data-series': l.id,
      'data-values': JSON.stringify(Array.from(l.values, (v) => (Number.isFinite(v) ? v : null))),
    }));
  });
  // Legend (a chart of one series is named by its title), right-aligned.
  if (lines.length > 1) {
    let lx = W - M.r;
    for (let k = lines.length - 1; k >= 0; k--) {
      const l = lines[k];
      lx -= 22 + 6.2 * l.label.length;
      root.append(svg('line', { class: `line s${k % 6}${l.dash ? ' dash' : ''}`, x1: lx, x2: lx + 14, y1: 9, y2: 9 }));
      root.append(svg('text', { class: 'legend', x: lx + 18, y: 12, text: l.label }));
    }
  }

  // The current bin, and a hover readout.
  if (Number.isInteger(data.cursor) && data.cursor >= offset && data.cursor < offset + n) {
    const cx = x(data.cursor - offset);
    root.append(svg('line', { class: 'cursor', x1: cx, x2: cx, y1: M.t, y2: H - M.b }));
  }
  const hover = svg('line', { class: 'hover', x1: 0, x2: 0, y1: M.t, y2: H - M.b, visibility: 'hidden' });
  root.append(hover);
  const readout = el('div', { class: 'readout', hidden: true });
  const overlay = svg('rect', { class: 'overlay', x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b });
  overlay.addEventListener('mousemove', (ev) => {
    const box = root.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    const i = Math.max(0, Math.min(n - 1, Math.round(((px - M.l) / (W - M.l - M.r)) * (n - 1))));
    hover.setAttribute('x1', x(i));
    hover.setAttribute('x2', x(i));
    hover.setAttribute('visibility', 'visible');
    const bin = offset + i;
    const when = utc(binStart(grid, bin));
    readout.textContent = `bin ${bin}${when ? ` · ${when} UTC` : ''} · ${lines
      .map((l) => `${l.label} ${fmt(l.values[i])}${data.unit ? ` ${data.unit}` : ''}`).join(' · ')}`;
    readout.hidden = false;
  });
  overlay.addEventListener('mouseleave', () => { hover.setAttribute('visibility', 'hidden'); readout.hidden = true; });
  if (data.onPick) overlay.addEventListener('click', (ev) => {
    const box = root.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    data.onPick(offset + Math.max(0, Math.min(n - 1, Math.round(((px - M.l) / (W - M.l - M.r)) * (n - 1)))));
  });
  root.append(overlay);
  node.replaceChildren(el('figure', { class: 'chart-box', 'data-chart': data.id || data.title }, root, readout));
}

/**
 * An x–y chart (analysis curves and traces): data {id, title, xLabel, yLabel, lines: [{id,
 * label, xs, ys}]}; NaN is a gap, points are marked.
 */
export function xyChart(data, node) {
  const xs = data.lines.flatMap((l) => l.xs);
  let [x0, x1] = extent([xs]);
  if (x0 === x1) x1 = x0 + 1;
  let [y0, y1] = extent(data.lines.map((l) => l.ys));
  if (y0 === y1) y1 = y0 + 1;
  const yt = niceTicks(y0, y1, 4);
  const xt = niceTicks(x0, x1, 6);
  y0 = Math.min(y0, yt[0]);
  y1 = Math.max(y1, yt[yt.length - 1]);
  const x = (v) => M.l + ((W - M.l - M.r) * (v - x0)) / (x1 - x0);
  const y = (v) => M.t + (H - M.t - M.b) * (1 - (v - y0) / (y1 - y0));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': data.title });
  for (const v of yt) {
    root.append(svg('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
    root.append(svg('text', { class: 'tick', x: M.l - 4, y: y(v) + 3, 'text-anchor': 'end', text: fmt(v) }));
  }
  for (const v of xt.filter((t) => t >= x0 && t <= x1)) {
    root.append(svg('line', { class: 'grid', x1: x(v), x2: x(v), y1: M.t, y2: H - M.b }));
    root.append(svg('text', { class: 'tick', x: x(v), y: H - M.b + 12, 'text-anchor': 'middle', text: fmt(v) }));
  }
  root.append(svg('text', { class: 'axis', x: W - M.r, y: H - 4, 'text-anchor': 'end', text: data.xLabel }));
  root.append(svg('text', { class: 'axis', x: 4, y: 12, text: `${data.title} (${data.yLabel})` }));
  data.lines.forEach((l, k) => {
    let d = '';
    let open = false;
    l.xs.forEach((xv, i) => {
      const yv = l.ys[i];
      if (!Number.isFinite(yv)) { open = false; return; }
      d += `${open ? 'L' : 'M'}${x(xv).toFixed(1)},${y(yv).toFixed(1)}`;
      open = true;
      root.append(svg('circle', { class: `dot s${k % 6}`, cx: x(xv).toFixed(1), cy: y(yv).toFixed(1), r: 2 }));
    });
    root.append(svg('path', { class: `line s${k % 6}`, d, 'data-series': l.id, 'data-values': JSON.stringify(l.ys.map((v) => (Number.isFinite(v) ? v : null))) }));
  });
  node.replaceChildren(el('figure', { class: 'chart-box', 'data-chart': data.id }, root));
}
