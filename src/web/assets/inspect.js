// The inspection panel of one topology node: its state at the bin (roles, derived metrics), the
// inferred capacity with its method and confidence, charts of its series over the window, and
// its warnings. With a class chosen (SPEC §6.1) a classed series shows its part `x@c`; stacked,
// every class's part piled up to the total.
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
 * kind, grid, bin, warnings, onPick(bin), cls ('' totals, '*' stacked by class, or a class id),
 * classes, classed (Set of classed series ids), classValues (Map `x@c` → Float64Array)}.
 */
export function inspect(data, node) {
  const gnode = data.graph.nodes.find((n) => n.id === data.id);
  if (!gnode) {
    node.replaceChildren(el('p', { class: 'hint' }, 'Click a node of the graph to inspect it.'));
    return;
  }
  const ns = data.state ? data.state.nodes.find((n) => n.id === data.id) : null;
  const one = data.cls && data.cls !== '*' && data.classed && data.classed.size ? data.cls : '';
  // The series a row or chart shows: the chosen class's part of a classed series, else the total.
  const shown = (sid) => (one && data.classed.has(sid) ? `${sid}@${one}` : sid);
  const rows = [];
  for (const [group, map] of [['roles', gnode.roles], ['derived', gnode.derived]]) {
    for (const [name, sid] of Object.entries(map).sort()) {
      const id = shown(sid);
      const v = id !== sid ? num(data.state.series[id]) : ns ? num((ns[group] || {})[name]) : NaN;
      rows.push(el('tr', { 'data-role': name, 'data-series': id },
        el('th', {}, name), el('td', { class: 'value' }, fmt(v)), el('td', { class: 'unit' }, unit(data.kinds[sid])), el('td', { class: 'sid' }, id)));
    }
  }
  const charts = el('div', { class: 'charts' });
  for (const [name, sid] of [...Object.entries(gnode.roles), ...Object.entries(gnode.derived)]) {
    const total = data.values.get(sid);
    if (!total) continue;
    const box = el('div', { class: 'chart-slot' });
    charts.append(box);
    const common = { unit: unit(data.kinds[sid]), grid: data.grid, cursor: data.bin, onPick: data.onPick };
    const parts = data.cls === '*' && data.classed && data.classed.has(sid)
      ? data.classes.map((c) => ({ id: `${sid}@${c}`, label: c, values: data.classValues.get(`${sid}@${c}`) })).filter((l) => l.values)
      : [];
    if (parts.length) {
      lineChart({ ...common, id: sid, title: `${name}: ${sid} by class`, stacked: true,
        lines: [...parts, { id: sid, label: 'total', values: total, dash: true }] }, box);
      continue;
    }
    const id = shown(sid);
    const values = id === sid ? total : data.classValues.get(id);
    if (!values) continue;
    lineChart({ ...common, id, title: `${name}: ${id}`, lines: [{ id, label: id, values }] }, box);
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
