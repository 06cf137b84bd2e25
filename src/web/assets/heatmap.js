// The heatmap: one metric over topology nodes × time, a cell per (node, bin), hover readout, a
// click scrubs there and selects the node.
import { svg, el, fmt, heat, binStart, utc, hhmm, extent } from './util.js';

/** data: {rows: [{id, values}], grid, metric, unit, bin, onPick(bin, id)}. */
export function heatmap(data, node) {
  const { rows, grid } = data;
  const n = Math.max(1, ...rows.map((r) => r.values.length));
  const L = 130;
  const cw = Math.max(2, Math.min(8, 900 / n));
  const ch = 26;
  const W = L + cw * n + 10;
  const H = 24 + ch * rows.length + 22;
  const [lo, hi] = extent(rows.map((r) => r.values));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'heatmap', role: 'img', 'aria-label': `${data.metric} heatmap` });
  root.append(svg('text', { class: 'axis', x: 4, y: 14, text: `${data.metric}${data.unit ? ` (${data.unit})` : ''}: ${fmt(lo)} … ${fmt(hi)}` }));
  rows.forEach((r, k) => {
    const y = 24 + k * ch;
    root.append(svg('text', { class: 'tick', x: L - 6, y: y + ch / 2 + 4, 'text-anchor': 'end', text: r.id }));
    let run = null;
    // Adjacent bins of one colour share a rect: a 288-bin row is a few dozen elements.
    const flush = (end) => { if (run) root.append(svg('rect', { x: L + run.i * cw, y, width: (end - run.i) * cw + 0.2, height: ch - 2, fill: run.c })); };
    for (let i = 0; i < r.values.length; i++) {
      const c = heat(hi > lo ? (r.values[i] - lo) / (hi - lo) : 0);
      if (!run || run.c !== c) { flush(i); run = { i, c }; }
    }
    flush(r.values.length);
  });
  const t0 = binStart(grid, 0);
  for (let i = 0; i < n; i += Math.max(1, Math.round(n / 8))) {
    root.append(svg('text', { class: 'tick', x: L + i * cw, y: H - 6, text: Number.isFinite(t0) ? hhmm(binStart(grid, i)) : String(i) }));
  }
  if (Number.isInteger(data.bin)) root.append(svg('line', { class: 'cursor', x1: L + (data.bin + 0.5) * cw, x2: L + (data.bin + 0.5) * cw, y1: 20, y2: 24 + ch * rows.length }));
  const readout = el('div', { class: 'readout' }, 'hover a cell');
  const cell = (ev) => {
    const box = root.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    const py = ((ev.clientY - box.top) / box.height) * H;
    const i = Math.floor((px - L) / cw);
    const k = Math.floor((py - 24) / ch);
    return i >= 0 && i < n && k >= 0 && k < rows.length ? { i, k } : null;
  };
  root.addEventListener('mousemove', (ev) => {
    const c = cell(ev);
    if (c) readout.textContent = `${rows[c.k].id} · bin ${c.i} · ${utc(binStart(grid, c.i))} UTC · ${fmt(rows[c.k].values[c.i])}${data.unit ? ` ${data.unit}` : ''}`;
  });
  root.addEventListener('click', (ev) => { const c = cell(ev); if (c) data.onPick(c.i, rows[c.k].id); });
  node.replaceChildren(root, readout);
}
