// The topology graph: positions from the template's `ui` coordinates, otherwise a layered layout
// (longest path from the sources); nodes coloured by a metric at the current bin, edges as wide
// as their flow. Clicking a node selects it.
import { svg, el, fmt, heat, num } from './util.js';

/** Layer index of every node: the longest path to it from a node without inputs. */
function layers(nodes, edges) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < nodes.length; pass++) {
    let moved = false;
    for (const e of edges) {
      const want = (layer.get(e.from) ?? 0) + 1;
      if (layer.has(e.to) && want > layer.get(e.to) && want < nodes.length) { layer.set(e.to, want); moved = true; }
    }
    if (!moved) break;
  }
  return layer;
}

/** Node id → {x, y}. */
export function layout(graph) {
  const nodes = graph.nodes;
  const given = nodes.every((n) => n.uiX !== undefined && n.uiX !== null && n.uiY !== undefined && n.uiY !== null);
  const pos = new Map();
  if (given) {
    for (const n of nodes) pos.set(n.id, { x: num(n.uiX), y: num(n.uiY) });
    return pos;
  }
  const layer = layers(nodes, graph.edges);
  const row = new Map();
  for (const n of nodes) {
    const l = layer.get(n.id);
    const r = row.get(l) || 0;
    row.set(l, r + 1);
    pos.set(n.id, { x: 80 + l * 200, y: 80 + r * 110 });
  }
  return pos;
}

/** The value of `metric` for a node in a BinState (roles first, then derived metrics);
 * undefined when the node has no such series. */
export function metricAt(nodeState, metric) {
  if (!nodeState) return undefined;
  if (nodeState.roles && metric in nodeState.roles) return num(nodeState.roles[metric]);
  if (nodeState.derived && metric in nodeState.derived) return num(nodeState.derived[metric]);
  return undefined;
}

/**
 * data: {graph, state (a BinState, or null), metric, range: [lo, hi] of the metric, unit,
 * selected, onSelect(id)}.
 */
export function topology(data, node) {
  const { graph, state } = data;
  const pos = layout(graph);
  const xs = [...pos.values()].map((p) => p.x);
  const ys = [...pos.values()].map((p) => p.y);
  const pad = 90;
  const minX = Math.min(...xs) - pad;
  const minY = Math.min(...ys) - 60;
  const w = Math.max(...xs) - minX + pad;
  const h = Math.max(...ys) - minY + 60;
  const byId = new Map((state ? state.nodes : []).map((s) => [s.id, s]));
  const series = state ? state.series : {};
  const root = svg('svg', { viewBox: `${minX} ${minY} ${w} ${h}`, class: 'topology', role: 'img', 'aria-label': 'topology' });
  root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 12, markerHeight: 12, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
    svg('path', { d: 'M0,0L10,5L0,10z', class: 'arrowhead' }))));
  const flows = graph.edges.map((e) => num(series[e.series]));
  const maxFlow = Math.max(1, ...flows.filter(Number.isFinite));
  graph.edges.forEach((e, i) => {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) return;
    const f = flows[i];
    const width = Number.isFinite(f) ? 1.5 + (6 * f) / maxFlow : 1.5;
    root.append(svg('line', {
      class: 'edge', x1: a.x + 62, y1: a.y, x2: b.x - 64, y2: b.y, 'stroke-width': width.toFixed(2),
      'marker-end': 'url(#arrow)', 'data-edge': `${e.from}->${e.to}`,
    }));
    root.append(svg('text', { class: 'edge-label', x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 8, 'text-anchor': 'middle', text: Number.isFinite(f) ? `${fmt(f)}/bin` : '' }));
  });
  const [lo, hi] = data.range || [0, 1];
  for (const n of graph.nodes) {
    const p = pos.get(n.id);
    const v = metricAt(byId.get(n.id), data.metric);
    const t = v === undefined ? NaN : hi > lo ? (v - lo) / (hi - lo) : 0;
    const g = svg('g', { class: `node${n.id === data.selected ? ' selected' : ''}`, 'data-node': n.id, tabindex: 0, transform: `translate(${p.x},${p.y})` });
    g.append(svg('rect', { x: -60, y: -30, width: 120, height: 60, rx: 8, fill: heat(t) }));
    g.append(svg('text', { class: 'node-id', y: -10, 'text-anchor': 'middle', text: n.id }));
    g.append(svg('text', { class: 'node-kind', y: 5, 'text-anchor': 'middle', text: n.kind }));
    g.append(svg('text', { class: 'node-value', y: 21, 'text-anchor': 'middle', 'data-metric': data.metric, text: v === undefined ? '' : `${data.metric} ${fmt(v)}` }));
    g.addEventListener('click', () => data.onSelect(n.id));
    g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') data.onSelect(n.id); });
    root.append(g);
  }
  node.replaceChildren(root, el('div', { class: 'scale' },
    el('span', { class: 'swatch', style: `background:${heat(0)}` }), ` ${fmt(lo)} `,
    el('span', { class: 'swatch', style: `background:${heat(1)}` }), ` ${fmt(hi)} ${data.unit || ''} (${data.metric}, over the window)`));
}
