// Compare: two targets series by series; differing series overlaid with their difference,
// identical ones marked, and those identical without evaluation (not downstream of any
// difference) marked as such.
import { el, fmt, num, nums, unit } from './util.js';
import { lineChart } from './chart.js';

/** data: {result: CompareResponse, labelA, labelB, kinds, selected, onSelect(id)}. */
export function compare(data, node) {
  const r = data.result;
  const s = r.summary;
  const rows = r.series.map((c) => {
    let status;
    let mark;
    if (c.onlyInA || c.onlyInB) { status = `only in ${c.onlyInA ? data.labelA : data.labelB}`; mark = 'only'; }
    else if (c.identical && c.notDownstreamOfAnyDifference) { status = 'identical by construction (not evaluated)'; mark = 'construction'; }
    else if (c.identical) { status = 'identical (evaluated)'; mark = 'evaluated'; }
    else { status = `${c.binsDiffer} bins differ, max |b − a| ${fmt(num(c.maxAbsDiff))}`; mark = 'differs'; }
    return el('tr', { class: `cmp ${mark}${c.id === data.selected ? ' selected' : ''}`, 'data-series': c.id, 'data-identical': c.identical ? mark : null,
      onclick: () => data.onSelect(c.id) },
    el('td', {}, c.id), el('td', {}, status), el('td', { class: 'num' }, fmt(num(c.totalA))), el('td', { class: 'num' }, fmt(num(c.totalB))));
  });
  const detail = el('div', { class: 'compare-detail' });
  const sel = r.series.find((c) => c.id === data.selected && c.a && c.a.length);
  if (sel) {
    const u = unit(data.kinds[sel.id]);
    const top = el('div', { class: 'chart-slot' });
    const bottom = el('div', { class: 'chart-slot' });
    detail.append(top, bottom);
    lineChart({ id: `${sel.id}:overlay`, title: sel.id, unit: u, grid: r.grid,
      lines: [{ id: `${sel.id}:a`, label: data.labelA, values: nums(sel.a) }, { id: `${sel.id}:b`, label: data.labelB, values: nums(sel.b), dash: true }] }, top);
    lineChart({ id: `${sel.id}:diff`, title: `${sel.id}: b − a`, unit: u, grid: r.grid, lines: [{ id: `${sel.id}:diff`, label: 'b − a', values: nums(sel.diff) }] }, bottom);
  } else {
    detail.append(el('p', { class: 'hint' }, 'Click a differing series to overlay both sides and their difference.'));
  }
  node.replaceChildren(
    el('p', { class: 'summary' }, `${s.series} series: ${s.differing} differ, ${s.identical} identical, ${s.notDownstream} of them by construction (not downstream of any difference, so not evaluated).`),
    el('table', { class: 'compare' }, el('thead', {}, el('tr', {}, el('th', {}, 'series'), el('th', {}, 'status'), el('th', {}, `total ${data.labelA}`), el('th', {}, `total ${data.labelB}`))), el('tbody', {}, rows)),
    detail,
  );
}
