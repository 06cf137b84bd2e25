// The inspection panel of one topology node: its state at the bin (roles, derived metrics), the
// inferred capacity with its method and confidence, charts of its series over the window, and
// its warnings.
import { el, fmt, unit, num } from './util.js';
import { lineChart } from './chart.js';

function inference(inf) {
  if (!inf) return null;
  if (inf.refused) return el('p', { class: 'inference refused' }, `capacity not inferred (${inf.method}): ${inf.refused}`);
  return el('p', { class: 'inference' },
    `capacity inferred (${inf.method}, confidence ${fmt(num(inf.confidence))}, ${inf.saturatedBins} saturated bins)`);
}

/**
 * data: {id, graph, state (BinState), values: Map series id → Float64Array, kinds: series id →
 * kind, grid, bin, warnings, onPick(bin)}.
 */
export function inspect(data, node) {
  const gnode = data.graph.nodes.find((n) => n.id === data.id);
  if (!gnode) {
    node.replaceChildren(el('p', { class: 'hint' }, 'Click a node of the graph to inspect it.'));
    return;
  }
  const ns = data.state ? data.state.nodes.find((n) => n.id === data.id) : null;
  const rows = [];
  for (const [group, map] of [['roles', gnode.roles], ['derived', gnode.derived]]) {
    for (const [name, sid] of Object.entries(map).sort()) {
      const v = ns ? num((ns[group] || {})[name]) : NaN;
      rows.push(el('tr', { 'data-role': name },
        el('th', {}, name), el('td', { class: 'value' }, fmt(v)), el('td', { class: 'unit' }, unit(data.kinds[sid])), el('td', { class: 'sid' }, sid)));
    }
  }
  const charts = el('div', { class: 'charts' });
  for (const [name, sid] of [...Object.entries(gnode.roles), ...Object.entries(gnode.derived)]) {
    const values = data.values.get(sid);
    if (!values) continue;
    const box = el('div', { class: 'chart-slot' });
    charts.append(box);
    lineChart({ id: sid, title: `${name}: ${sid}`, unit: unit(data.kinds[sid]), grid: data.grid, cursor: data.bin,
      lines: [{ id: sid, label: sid, values }], onPick: data.onPick }, box);
  }
  const warns = data.warnings.filter((w) => w.nodeId === data.id || Object.values(gnode.roles).includes(w.nodeId));
  node.replaceChildren(
    el('h3', {}, `${gnode.id} `, el('small', {}, `${gnode.kind}${gnode.group ? ` · ${gnode.group}` : ''}`)),
    el('table', { class: 'at-bin' }, el('tbody', {}, rows)),
    inference(ns && ns.inference) || el('span'),
    warns.length ? el('ul', { class: 'node-warnings' }, warns.map((w) => el('li', { class: w.severity }, `${w.code}: ${w.message}`))) : el('span'),
    charts,
  );
}
