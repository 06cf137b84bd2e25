// The warnings list: each linked to its node and bins; a click scrubs to the bin and selects the
// node.
import { el, fmt, num, binStart, hhmm } from './util.js';

/** data: {warnings: [Warning], grid, onPick(bin, nodeId)}. */
export function warnings(data, node) {
  if (!data.warnings.length) {
    node.replaceChildren(el('p', { class: 'hint' }, 'No warnings.'));
    return;
  }
  const items = data.warnings.map((w) => {
    const bins = w.bins.slice(0, 12).map((b) => el('button', { type: 'button', class: 'bin-chip', 'data-bin': b,
      onclick: (ev) => { ev.stopPropagation(); data.onPick(b, w.nodeId); } }, `${b} ${hhmm(binStart(data.grid, b))}`));
    return el('li', { class: `warning ${w.severity}`, 'data-code': w.code, 'data-node': w.nodeId,
      onclick: () => data.onPick(w.bins.length ? w.bins[0] : 0, w.nodeId) },
    el('strong', {}, w.code), ` on ${w.nodeId}: ${w.message}`,
    w.value !== undefined && w.value !== null ? el('small', {}, ` (worst ${fmt(num(w.value))})`) : '',
    el('div', { class: 'bins' }, bins, w.bins.length > 12 ? ` … ${w.bins.length} bins` : ''));
  });
  node.replaceChildren(el('ul', { class: 'warnings' }, items));
}
