// Analyses (AnalysisService): a form per mode, and its result drawn: sweep curves, the goal-seek
// and optimize traces, Monte Carlo bands, fit residuals. The form builds the request; the app
// runs it on the server's stream and hands the result back here.
import { el, fmt, num, nums, unit } from './util.js';
import { lineChart, xyChart } from './chart.js';

const MODES = {
  Sweep: 'sweep a parameter over a range: a metric at each value',
  GoalSeek: 'find the parameter value where a metric reaches a target',
  Optimize: 'minimise or maximise a metric over a parameter box',
  MonteCarlo: 'draw a parameter from a distribution: per-bin bands of a series',
  Fit: 'fit a parameter so a modelled series matches an observed one',
};

function field(label, input) {
  return el('label', { class: 'field' }, `${label} `, input);
}

/**
 * data: {decls, seriesIds, kinds, grid, mode, onRun(mode, request body without options),
 * onMode(mode)}. Returns {show(progressText, result)}.
 */
export function analyses(data, node) {
  const numbers = data.decls.filter((d) => d.type === 'number');
  const p0 = numbers[0] || { name: '', min: 0, max: 1 };
  const lo0 = p0.min !== undefined && p0.min !== null ? num(p0.min) : 0;
  const hi0 = p0.max !== undefined && p0.max !== null ? num(p0.max) : lo0 + 100;
  const param = el('select', { name: 'param' }, numbers.map((d) => el('option', { value: d.name }, d.name)));
  const lo = el('input', { name: 'lo', type: 'text', value: lo0, size: 6 });
  const hi = el('input', { name: 'hi', type: 'text', value: hi0, size: 6 });
  const series = el('select', { name: 'series' }, data.seriesIds.map((s) => el('option', { value: s }, s)));
  const metric = el('input', { name: 'metric', type: 'text', value: data.seriesIds.length ? `max(${data.seriesIds[0]})` : '', size: 28, spellcheck: 'false' });
  const extra = {
    Sweep: [['steps', '21']],
    GoalSeek: [['target', '100']],
    Optimize: [['maximize', false]],
    MonteCarlo: [['samples', '200'], ['seed', '1'], ['mean', String((lo0 + hi0) / 2)], ['sd', String((hi0 - lo0) / 10)]],
    Fit: [['observed', data.seriesIds[1] || '']],
  }[data.mode];
  const inputs = Object.fromEntries(extra.map(([k, v]) => [k, typeof v === 'boolean'
    ? el('input', { type: 'checkbox', name: k })
    : el('input', { type: 'text', name: k, value: v, size: k === 'observed' ? 24 : 6, spellcheck: 'false' })]));
  const value = (k) => inputs[k].value.trim();
  const request = () => {
    const p = param.value;
    switch (data.mode) {
      case 'Sweep': return { vary: [{ name: p, range: { lo: Number(lo.value), hi: Number(hi.value), steps: Number(value('steps')) } }], metrics: [metric.value.trim()] };
      case 'GoalSeek': return { param: p, lo: Number(lo.value), hi: Number(hi.value), metric: metric.value.trim(), target: Number(value('target')) };
      case 'Optimize': return { params: [{ name: p, lo: Number(lo.value), hi: Number(hi.value) }], objective: metric.value.trim(), maximize: inputs.maximize.checked };
      case 'MonteCarlo': return { samples: Number(value('samples')), seed: Number(value('seed')), series: [series.value], metrics: [metric.value.trim()],
        distributions: [{ name: p, normal: { mean: Number(value('mean')), sd: Number(value('sd')) } }] };
      default: return { params: [{ name: p, lo: Number(lo.value), hi: Number(hi.value) }], modelled: series.value, observedRef: value('observed') };
    }
  };
  const usesSeries = data.mode === 'MonteCarlo' || data.mode === 'Fit';
  const modes = el('select', { name: 'mode', onchange: (ev) => data.onMode(ev.target.value) },
    Object.keys(MODES).map((m) => el('option', { value: m, selected: m === data.mode }, m)));
  const form = el('form', { class: 'inline analysis-form', onsubmit: (ev) => { ev.preventDefault(); data.onRun(data.mode, request()); } },
    field('mode', modes), field('parameter', param), field('lo', lo), field('hi', hi),
    usesSeries ? field(data.mode === 'Fit' ? 'modelled' : 'series', series) : '',
    data.mode !== 'Fit' ? field(data.mode === 'Optimize' ? 'objective' : 'metric', metric) : '',
    extra.map(([k]) => field(k, inputs[k])), el('button', { type: 'submit' }, 'run'));
  const out = el('div', { class: 'analysis-result' });
  const progress = el('p', { class: 'progress' });
  node.replaceChildren(el('p', { class: 'hint' }, MODES[data.mode]), form, progress, out);
  return {
    /** Progress text, and the result once it came (drawn below the form, which keeps its input). */
    show(text, r) {
      progress.textContent = text || '';
      out.replaceChildren();
      if (r) result({ ...data, result: r }, out);
    },
  };
}

function settings(ps) {
  return ps.map((p) => `${p.name} = ${fmt(num(p.value))}`).join(', ');
}

function result(data, out) {
  const r = data.result;
  const slot = () => { const s = el('div', { class: 'chart-slot' }); out.append(s); return s; };
  switch (data.mode) {
    case 'Sweep': {
      const name = r.points.length ? r.points[0].params[0].name : '';
      const metrics = r.points.length ? r.points[0].metrics.map((m) => m.metric) : [];
      xyChart({ id: 'sweep', title: `sweep of ${name}`, xLabel: name, yLabel: metrics.join(', '),
        lines: metrics.map((m, k) => ({ id: m, label: m, xs: r.points.map((p) => num(p.params[0].value)), ys: r.points.map((p) => num(p.metrics[k].value)) })) }, slot());
      break;
    }
    case 'GoalSeek':
    case 'Optimize': {
      const steps = r.trace;
      out.append(el('p', { class: 'summary' }, data.mode === 'GoalSeek'
        ? `${r.converged ? 'converged' : 'not converged'}: ${fmt(num(r.value))} gives ${fmt(num(r.achieved))} after ${r.iterations} evaluations${r.message ? ` — ${r.message}` : ''}`
        : `${r.converged ? 'converged' : 'not converged'}${r.feasible ? '' : ' (infeasible)'}: ${settings(r.params)}, objective ${fmt(num(r.objective))} after ${r.iterations} evaluations${r.message ? ` — ${r.message}` : ''}`));
      const xs = steps.map((_, i) => i);
      xyChart({ id: 'trace-value', title: 'trace: metric at each step', xLabel: 'step', yLabel: 'metric', lines: [{ id: 'value', label: 'metric', xs, ys: steps.map((s) => num(s.value)) }] }, slot());
      xyChart({ id: 'trace-params', title: 'trace: parameters at each step', xLabel: 'step', yLabel: 'value',
        lines: (steps.length ? steps[0].params : []).map((p, k) => ({ id: p.name, label: p.name, xs, ys: steps.map((s) => num(s.params[k].value)) })) }, slot());
      break;
    }
    case 'MonteCarlo': {
      out.append(el('p', { class: 'summary' }, `${r.samples} samples, seed ${r.seed}: ${r.metrics.map((m) => `${m.metric} p5 ${fmt(num(m.p5))} · p50 ${fmt(num(m.p50))} · p95 ${fmt(num(m.p95))}`).join('; ')}`));
      for (const b of r.bands) {
        lineChart({ id: `band:${b.series}`, title: `${b.series}: p5–p95 band, median, mean`, unit: unit(data.kinds[b.series]), grid: data.grid,
          band: { lo: nums(b.p5), hi: nums(b.p95) }, lines: [{ id: `${b.series}:p50`, label: 'p50', values: nums(b.p50) }, { id: `${b.series}:mean`, label: 'mean', values: nums(b.mean), dash: true }] }, slot());
      }
      break;
    }
    default: {
      out.append(el('p', { class: 'summary' }, `${r.converged ? 'converged' : 'not converged'}: ${settings(r.params)}, ${r.lossKind} ${fmt(num(r.loss))}, R² ${fmt(num(r.r2))}, ${r.binsUsed} bins used${r.message ? ` — ${r.message}` : ''}`));
      const w = r.window || { start: 0 };
      lineChart({ id: 'fit-residuals', title: 'residuals (observed − modelled)', unit: '', grid: data.grid, offset: Number(w.start),
        lines: [{ id: 'residuals', label: 'residual', values: nums(r.residuals) }] }, slot());
    }
  }
}
