// Small helpers every view shares: DOM builders, numbers from the JSON gateway, UTC time, units.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** An HTML element: el('div', {class: 'x', onclick: f}, child, 'text'). */
export function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, like `el`. */
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A double as the gateway writes it: a number, or "NaN" / "Infinity" / "-Infinity". */
export function num(x) {
  if (typeof x === 'number') return x;
  if (x === 'NaN' || x === undefined || x === null) return NaN;
  if (x === 'Infinity') return Infinity;
  if (x === '-Infinity') return -Infinity;
  return Number(x);
}

/** A packed `repeated double` as a Float64Array. */
export function nums(a) {
  return Float64Array.from(a || [], num);
}

/** A value for display: integers as they are, others to 4 significant digits; NaN as "NaN". */
export function fmt(v) {
  if (v === undefined || v === null) return '—';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  return String(Number(v.toPrecision(4)));
}

/** Milliseconds since the epoch of the start of `bin` (NaN without `grid.start`). */
export function binStart(grid, bin) {
  if (!grid || !grid.start) return NaN;
  return Date.parse(grid.start) + bin * Number(grid.binMinutes) * 60000;
}

/** "2025-10-07 10:25" (UTC) for epoch milliseconds. */
export function utc(ms) {
  if (!Number.isFinite(ms)) return '';
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

/** "10:25" (UTC). */
export function hhmm(ms) {
  return Number.isFinite(ms) ? new Date(ms).toISOString().slice(11, 16) : '';
}

/** The unit of a series by its kind (SPEC §8). */
export function unit(kind) {
  return { flow: 'per bin', stock: 'items', ratio: 'ratio', time: 'minutes' }[kind] || '';
}

/** A target as text: "session" or "session/variant". */
export function targetName(t) {
  return t.variant ? `${t.session}/${t.variant}` : t.session;
}

/** "session" or "session/variant" as a target. */
export function parseTarget(s) {
  const i = s.indexOf('/');
  return i < 0 ? { session: s, variant: '' } : { session: s.slice(0, i), variant: s.slice(i + 1) };
}

/** A colour from green (0) through amber to red (1). */
export function heat(t) {
  if (!Number.isFinite(t)) return 'var(--nan)';
  const x = Math.max(0, Math.min(1, t));
  return `hsl(${Math.round(130 - 130 * x)} 65% ${Math.round(62 - 14 * x)}%)`;
}

/** Minimum and maximum of the finite values of several arrays. */
export function extent(arrays) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) for (const v of a) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return lo <= hi ? [lo, hi] : [0, 1];
}
