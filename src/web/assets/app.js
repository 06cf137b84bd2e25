// The workbench: wires the views to the API. State lives here; each view is a function of data
// and a DOM node. Live values come from the watch stream; what a bin looks like (§11 state at
// bin) from GetState; every change goes through the same operations gRPC clients use.
import { call, stream, onConnection, pending, ApiError } from './api.js';
import { el, nums, unit, targetName, parseTarget, extent } from './util.js';
import { topology } from './topology.js';
import { scrubber } from './scrubber.js';
import { inspect } from './inspect.js';
import { params } from './params.js';
import { sessions } from './sessions.js';
import { compare } from './compare.js';
import { warnings } from './warnings.js';
import { heatmap } from './heatmap.js';
import { analyses } from './analyses.js';

const $ = (id) => document.getElementById(id);
const S = {
  sessions: [], templates: [], target: null, session: null, decls: [], overrides: {}, graph: null, nodeById: new Map(), grid: null,
  kinds: {}, values: new Map(), revision: 0, bin: 0, state: null, selected: null, warnings: [], view: 'explore',
  watch: null, lost: false, compare: null, compareSel: null, awaiting: null, loading: 0,
  // SPEC §6.1 classes: the target's class ids and classed series (from GetState's `x@c` keys),
  // the chosen view ('' totals, '*' stacked by class, or a class id) and the per-class values
  // it draws (`x@c` → values, from GetSeries).
  classes: [], classed: new Set(), cls: '', classValues: new Map(),
};
let paramsUi = null;
let scrub = null;

function showError(e) {
  const box = $('error');
  box.textContent = e instanceof ApiError ? `${e.codeName}: ${e.located()}` : String(e && e.message ? e.message : e);
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

/** Runs `f`, counting it as loading, and shows an error it throws (other than a lost server). */
async function busy(f) {
  S.loading++;
  try {
    return await f();
  } catch (e) {
    if (!(e instanceof ApiError && e.network)) showError(e);
    return undefined;
  } finally {
    S.loading--;
  }
}

// ---- sessions and targets -------------------------------------------------------------------

async function refreshSessions() {
  const [s, t] = await Promise.all([
    call('flowtime.v1.SessionService/ListSessions', {}),
    call('flowtime.v1.TemplateService/ListTemplates', {}),
  ]);
  S.sessions = s.sessions;
  S.templates = t.templates;
  renderSessions();
  renderCompareChoices();
}

function renderSessions() {
  sessions({
    sessions: S.sessions, templates: S.templates, current: S.target,
    onOpen: (t) => busy(() => open(t)),
    onCreateVariant: (session, name) => busy(async () => {
      await call('flowtime.v1.SessionService/CreateVariant', { sessionId: session, name, parameters: {} });
      await refreshSessions();
      await open({ session, variant: name });
    }),
    onDeleteVariant: (session, name) => busy(async () => {
      await call('flowtime.v1.SessionService/DeleteVariant', { sessionId: session, name });
      await refreshSessions();
      if (S.target && S.target.session === session && S.target.variant === name) await open({ session, variant: '' });
    }),
    onOpenSession: (templateId, sessionId) => busy(async () => {
      const s = await call('flowtime.v1.SessionService/OpenSession', { templateId, sessionId });
      await refreshSessions();
      await open({ session: s.id, variant: '' });
    }),
  }, $('sessions'));
}

/** Opens a session or variant: its template's declarations, graph, values (watch), state. */
async function open(target, keepControls = false) {
  stopWatch();
  clearError();
  S.target = target;
  history.replaceState(null, '', `#${targetName(target)}`);
  $('target-name').textContent = targetName(target);
  const session = await call('flowtime.v1.SessionService/GetSession', { sessionId: target.session });
  const [template, graph, variant] = await Promise.all([
    call('flowtime.v1.TemplateService/GetTemplate', { id: session.templateId, version: session.templateVersion }),
    call('flowtime.v1.QueryService/GetGraph', { target }),
    target.variant ? call('flowtime.v1.SessionService/GetVariant', { sessionId: target.session, name: target.variant }) : null,
  ]);
  S.session = session;
  S.decls = template.parameters;
  S.overrides = variant ? variant.parameters : {};
  S.graph = graph;
  S.nodeById = new Map(graph.nodes.map((n) => [n.id, n]));
  S.grid = graph.grid;
  S.kinds = Object.fromEntries(graph.series.map((s) => [s.id, s.kind]));
  S.bin = Math.min(S.bin, Number(graph.grid.bins) - 1);
  if (!graph.nodes.some((n) => n.id === S.selected)) S.selected = graph.nodes.length ? graph.nodes[0].id : null;
  S.values = new Map();
  S.classes = [];
  S.classed = new Set();
  S.classValues = new Map();
  renderSessions();
  // A drag that just created this variant keeps its controls (and the drag) alive.
  if (keepControls) $('params-hint').textContent = `Changes update the variant ${targetName(target)}.`;
  else renderParams();
  scrub = scrubber({ grid: S.grid, bin: S.bin, onChange: (b) => { S.bin = b; loadState(); } }, $('scrubber'));
  startWatch();
  await Promise.all([loadWarnings(), loadState()]);
}

// ---- live values: the watch stream ----------------------------------------------------------

function stopWatch() {
  if (S.watch) S.watch.abort();
  S.watch = null;
}

function startWatch() {
  const ctl = new AbortController();
  S.watch = ctl;
  S.watchReady = false;
  stream('flowtime.v1.WatchService/Watch', { target: S.target }, onWatch, ctl.signal)
    .then(() => { if (!ctl.signal.aborted) lost(); })
    .catch((e) => {
      if (ctl.signal.aborted) return;
      if (!(e instanceof ApiError) || e.network) lost();
      // A read cancelled by a concurrent write (UNAVAILABLE, safe to retry): watch again; the
      // first event brings every series.
      else if (e.code === 14) startWatch();
      else showError(e);
    });
}

function onWatch(ev) {
  if (ev.initial) S.values = new Map();
  for (const c of ev.series) {
    if (c.removed) S.values.delete(c.id);
    else if (ev.initial || c.changed) S.values.set(c.id, nums(c.values));
  }
  S.revision = Number(ev.revision);
  S.watchReady = true;
  renderValues();
  if (S.awaiting && S.revision >= S.awaiting.revision) redrawn();
  if (!ev.initial) {
    loadState();
    loadWarnings();
    if (S.cls) busy(loadClassValues);
  }
}

// ---- classes (SPEC §6.1): per-class series through GetSeries ids and patterns ---------------

/**
 * The target's classes and classed series, read from a bin state's `x@c` keys; refreshes the
 * class selector. True when they changed (the per-class values then need loading again).
 */
function noteClasses(state) {
  const classes = new Set();
  const classed = new Set();
  for (const key of Object.keys(state.series)) {
    const at = key.lastIndexOf('@');
    if (at < 0) continue;
    classed.add(key.slice(0, at));
    classes.add(key.slice(at + 1));
  }
  // Declared classes in id order, flow of unknown class last.
  const list = [...classes].filter((c) => c !== '_unattributed').sort();
  if (classes.has('_unattributed')) list.push('_unattributed');
  const changed = list.join('\n') !== S.classes.join('\n') || classed.size !== S.classed.size;
  S.classes = list;
  S.classed = classed;
  if (S.cls && S.cls !== '*' && !list.includes(S.cls)) S.cls = '';
  const sel = $('class');
  // Rebuilt only when the classes change: every scrub step lands here, and a rebuilt <select>
  // closes under the user's pointer.
  if (changed || sel.options.length !== list.length + 2) {
    sel.replaceChildren(
      el('option', { value: '' }, 'all (totals)'),
      el('option', { value: '*' }, 'all, stacked by class'),
      ...list.map((c) => el('option', { value: c }, c)),
    );
  }
  if (sel.value !== S.cls) sel.value = S.cls;
  $('class-pick').hidden = !list.length;
  return changed;
}

/** The series ids shown for the chosen class: every `x@c` of one class, or the selected node's classed series × every class when stacked. */
function classQuery() {
  if (!S.cls || !S.classes.length) return null;
  if (S.cls !== '*') return { pattern: `*@${S.cls}` };
  const node = S.graph && S.nodeById.get(S.selected);
  if (!node) return null;
  const sids = [...Object.values(node.roles), ...Object.values(node.derived)].filter((sid) => S.classed.has(sid));
  const ids = [...new Set(sids)].flatMap((sid) => S.classes.map((c) => `${sid}@${c}`));
  return ids.length ? { ids } : null;
}

let classSeq = 0;

/** GetSeries of the per-class series the chosen class view draws (the latest request wins). */
async function loadClassValues() {
  const q = classQuery();
  const seq = ++classSeq;
  const target = S.target;
  const r = q ? await call('flowtime.v1.QueryService/GetSeries', { target, ...q }) : { series: [] };
  if (seq !== classSeq || target !== S.target) return;
  S.classValues = new Map(r.series.map((s) => [s.id, nums(s.values)]));
  renderExplore();
}

function chooseClass(cls) {
  S.cls = cls;
  busy(loadClassValues);
}

// ---- the bin: state at bin ------------------------------------------------------------------

/** The charts show the awaited change: how long since the input event that asked for it. */
function redrawn() {
  const m = performance.measure('param-redraw', { start: S.awaiting.t0, end: performance.now() });
  $('perf').textContent = `redrawn ${Math.round(m.duration)} ms after the input`;
  S.awaiting = null;
}

let stateRunning = false;
let stateAgain = false;

/** GetState for the current bin; while one is in flight, only the latest bin is asked next. */
async function loadState() {
  if (stateRunning) { stateAgain = true; return; }
  stateRunning = true;
  S.loading++;
  try {
    do {
      stateAgain = false;
      const target = S.target;
      const r = await call('flowtime.v1.QueryService/GetState', { target, bin: S.bin });
      if (target === S.target) {
        S.state = r.state;
        if (noteClasses(r.state)) await loadClassValues();
      }
    } while (stateAgain);
    renderExplore();
  } catch (e) {
    if (!(e instanceof ApiError && e.network)) showError(e);
  } finally {
    stateRunning = false;
    S.loading--;
  }
}

async function loadWarnings() {
  const target = S.target;
  const r = await busy(() => call('flowtime.v1.QueryService/GetWarnings', { target }));
  if (!r || target !== S.target) return;
  S.warnings = r.warnings;
  $('warning-count').textContent = r.warnings.length ? `(${r.warnings.length})` : '';
  renderWarnings();
}

// ---- parameters: live what-if ---------------------------------------------------------------

const edit = { want: new Map(), running: false, t0: 0 };

function renderParams() {
  const values = { ...(S.session ? S.session.parameters : {}), ...S.overrides };
  $('params-hint').textContent = S.target.variant
    ? `Changes update the variant ${targetName(S.target)}.`
    : 'Changes create a variant of this session (named in the field above, or "what-if").';
  paramsUi = params({
    decls: S.decls, values, overridden: new Set(Object.keys(S.overrides)),
    seriesIds: S.graph ? S.graph.series.map((s) => s.id) : [],
    onChange: (name, value, t0) => {
      edit.want.set(name, value);
      edit.t0 = t0;
      paramsUi.clear(name);
      if (!edit.running) flushEdits();
    },
  }, $('params'));
}

function newVariantName() {
  const typed = $('variant-name').value.trim();
  if (typed) return typed;
  const taken = new Set((S.sessions.find((s) => s.id === S.target.session) || { variants: [] }).variants);
  let name = 'what-if';
  for (let i = 2; taken.has(name); i++) name = `what-if-${i}`;
  return name;
}

/** Sends the latest wanted values, one request at a time (a drag coalesces into few). */
async function flushEdits() {
  edit.running = true;
  try {
    while (edit.want.size) {
      const parameters = Object.fromEntries(edit.want);
      edit.want.clear();
      const t0 = edit.t0;
      const target = S.target;
      try {
        if (target.variant) {
          const v = await call('flowtime.v1.SessionService/UpdateVariant', { sessionId: target.session, name: target.variant, parameters });
          Object.assign(S.overrides, parameters);
          S.awaiting = { revision: Number(v.revision), t0 };
          // The watch event may have come (and been drawn) before this reply.
          if (S.revision >= S.awaiting.revision) redrawn();
        } else {
          const name = newVariantName();
          await call('flowtime.v1.SessionService/CreateVariant', { sessionId: target.session, name, parameters });
          $('variant-name').value = '';
          await refreshSessions();
          await open({ session: target.session, variant: name }, true);
        }
      } catch (e) {
        if (!(e instanceof ApiError) || e.network) throw e;
        // The server's located message next to each control of the rejected request.
        for (const name of Object.keys(parameters)) paramsUi.error(name, e.located());
      }
    }
  } catch (e) {
    showError(e);
  } finally {
    edit.running = false;
  }
}

// ---- views ----------------------------------------------------------------------------------

function seriesOf(node, metric) {
  return (node.roles && node.roles[metric]) || (node.derived && node.derived[metric]) || null;
}

function renderValues() {
  if (S.view === 'explore') renderExplore();
  if (S.view === 'heatmap') renderHeatmap();
}

function renderExplore() {
  if (!S.graph || S.view !== 'explore') return;
  const metric = $('metric').value;
  const ids = S.graph.nodes.map((n) => seriesOf(n, metric)).filter(Boolean);
  const range = extent(ids.map((id) => S.values.get(id) || []));
  const kind = ids.length ? S.kinds[ids[0]] : '';
  const select = (id) => {
    S.selected = id;
    renderExplore();
    if (S.cls === '*') busy(loadClassValues);
  };
  // One class chosen: the graph shows that class's part of every classed series.
  const one = S.cls && S.cls !== '*' ? S.cls : '';
  const shown = one ? classState(S.state, one) : S.state;
  const drawnRange = one ? extent(ids.map((id) => S.classValues.get(`${id}@${one}`) || S.values.get(id) || [])) : range;
  topology({ graph: S.graph, state: shown, metric, range: drawnRange, unit: unit(kind), selected: S.selected, onSelect: select }, $('topology'));
  inspect({ id: S.selected, graph: S.graph, state: S.state, values: S.values, kinds: S.kinds, grid: S.grid, bin: S.bin,
    warnings: S.warnings, onPick: (b) => pick(b, S.selected),
    cls: S.cls, classes: S.classes, classed: S.classed, classValues: S.classValues }, $('inspect'));
}

/** A bin state as one class sees it: each classed role and series replaced by its `x@c` value. */
function classState(state, cls) {
  if (!state) return state;
  const part = (sid, v) => (S.classed.has(sid) ? state.series[`${sid}@${cls}`] : v);
  const series = Object.fromEntries(Object.entries(state.series).map(([sid, v]) => [sid, part(sid, v)]));
  const nodes = state.nodes.map((ns) => {
    const g = S.nodeById.get(ns.id);
    const roles = Object.fromEntries(Object.entries(ns.roles).map(([r, v]) => [r, part(g && g.roles[r], v)]));
    return { ...ns, roles };
  });
  return { ...state, series, nodes };
}

function renderHeatmap() {
  if (!S.graph) return;
  const metric = $('heat-metric').value;
  const rows = S.graph.nodes.map((n) => ({ id: n.id, sid: seriesOf(n, metric) }))
    .filter((r) => r.sid && S.values.has(r.sid)).map((r) => ({ id: r.id, values: S.values.get(r.sid) }));
  const sid = rows.length ? seriesOf(S.nodeById.get(rows[0].id), metric) : null;
  heatmap({ rows, grid: S.grid, metric, unit: unit(S.kinds[sid]), bin: S.bin, onPick: pick }, $('heatmap'));
}

function renderWarnings() {
  warnings({ warnings: S.warnings, grid: S.grid, onPick: pick }, $('warnings'));
}

/** Scrub to `bin` and select `nodeId` (a topology node, or the node whose series it is). */
function pick(bin, nodeId) {
  S.bin = bin;
  if (S.graph) {
    const owner = S.graph.nodes.find((n) => n.id === nodeId || Object.values(n.roles).includes(nodeId) || Object.values(n.derived).includes(nodeId));
    if (owner) S.selected = owner.id;
  }
  if (scrub) scrub.set(bin);
  setView('explore');
  loadState();
}

function allTargets() {
  return S.sessions.flatMap((s) => [s.id, ...s.variants.map((v) => `${s.id}/${v}`)]);
}

function renderCompareChoices() {
  const names = allTargets();
  for (const id of ['cmp-a', 'cmp-b']) {
    const sel = $(id);
    const keep = sel.value;
    sel.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
    if (names.includes(keep)) sel.value = keep;
  }
  if (!$('cmp-a').value && S.target) $('cmp-a').value = S.target.session;
  if (S.target && !names.includes($('cmp-b').dataset.chosen || '')) {
    $('cmp-b').value = S.target.variant ? targetName(S.target) : (names.find((n) => n.startsWith(`${S.target.session}/`)) || S.target.session);
  }
}

async function runCompare() {
  const a = parseTarget($('cmp-a').value);
  const b = parseTarget($('cmp-b').value);
  const result = await busy(() => call('flowtime.v1.QueryService/Compare', { a: { target: a }, b: { target: b }, includeValues: true }));
  if (!result) return;
  S.compare = { result, labelA: targetName(a), labelB: targetName(b) };
  const first = result.series.find((c) => !c.identical);
  S.compareSel = first ? first.id : null;
  renderCompare();
}

function renderCompare() {
  if (!S.compare) {
    $('compare').replaceChildren(el('p', { class: 'hint' }, 'Pick two targets and compare them.'));
    return;
  }
  compare({ ...S.compare, kinds: S.kinds, selected: S.compareSel, onSelect: (id) => { S.compareSel = id; renderCompare(); } }, $('compare'));
}

// ---- analyses ---------------------------------------------------------------------------

const ANALYSES = {
  Sweep: 'flowtime.v1.AnalysisService/Sweep',
  GoalSeek: 'flowtime.v1.AnalysisService/GoalSeek',
  Optimize: 'flowtime.v1.AnalysisService/Optimize',
  MonteCarlo: 'flowtime.v1.AnalysisService/MonteCarlo',
  Fit: 'flowtime.v1.AnalysisService/Fit',
};
const analysis = { mode: 'Sweep', ui: null, ctl: null };

function renderAnalyses() {
  if (!S.graph) return;
  analysis.ui = analyses({
    decls: S.decls, seriesIds: S.graph.series.map((s) => s.id), kinds: S.kinds, grid: S.grid, mode: analysis.mode,
    onMode: (m) => { analysis.mode = m; renderAnalyses(); },
    onRun: runAnalysis,
  }, $('analyses'));
}

/** Runs an analysis on the current target: progress while it runs, then its result. */
async function runAnalysis(mode, body) {
  if (analysis.ctl) analysis.ctl.abort();
  const ctl = new AbortController();
  analysis.ctl = ctl;
  const ui = analysis.ui;
  ui.show('running…', null);
  S.loading++;
  try {
    await stream(ANALYSES[mode], { options: { target: S.target }, ...body }, (ev) => {
      if (ev.result) ui.show('', ev.result);
      else if (ev.progress) ui.show(`${ev.progress.pointsDone} of ${ev.progress.pointsTotal} points`, null);
    }, ctl.signal);
  } catch (e) {
    if (!ctl.signal.aborted) ui.show(e instanceof ApiError ? `${e.codeName}: ${e.located()}` : String(e), null);
  } finally {
    S.loading--;
  }
}

function setView(view) {
  S.view = view;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.view === view);
  for (const v of ['explore', 'heatmap', 'compare', 'warnings', 'analyses']) $(`view-${v}`).hidden = v !== view;
  if (view === 'explore') renderExplore();
  if (view === 'heatmap') renderHeatmap();
  if (view === 'compare') renderCompare();
  if (view === 'warnings') renderWarnings();
  if (view === 'analyses' && (!analysis.ui || analysis.target !== S.target)) {
    analysis.target = S.target;
    renderAnalyses();
  }
}

// ---- connection -----------------------------------------------------------------------------

function lost() {
  if (S.lost) return;
  S.lost = true;
  stopWatch();
  $('banner').hidden = false;
  setTimeout(reconnect, 1000);
}

async function reconnect() {
  try {
    await refreshSessions();
  } catch {
    setTimeout(reconnect, 1000);
    return;
  }
  S.lost = false;
  $('banner').hidden = true;
  const known = S.target && S.sessions.some((s) => s.id === S.target.session);
  await busy(() => open(known ? S.target : { session: S.sessions[0].id, variant: '' }));
}

onConnection((ok) => { if (!ok) lost(); });

// A link or the address bar naming another target (#session or #session/variant) opens it.
window.addEventListener('hashchange', () => {
  const asked = decodeURIComponent(location.hash.slice(1));
  if (asked && (!S.target || asked !== targetName(S.target))) {
    busy(async () => {
      await refreshSessions();
      await open(parseTarget(asked));
    });
  }
});

// ---- start ----------------------------------------------------------------------------------

function theme() {
  const root = document.documentElement;
  const dark = root.dataset.theme ? root.dataset.theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
  root.dataset.theme = dark ? 'light' : 'dark';
}

async function start() {
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => setView(b.dataset.view));
  $('theme').addEventListener('click', theme);
  $('metric').addEventListener('change', renderExplore);
  $('class').addEventListener('change', () => chooseClass($('class').value));
  $('heat-metric').addEventListener('change', renderHeatmap);
  $('cmp-b').addEventListener('change', () => { $('cmp-b').dataset.chosen = $('cmp-b').value; });
  $('compare-form').addEventListener('submit', (ev) => { ev.preventDefault(); runCompare(); });
  await busy(refreshSessions);
  if (!S.sessions.length) {
    $('inspect').replaceChildren(el('p', { class: 'hint' }, 'No session is open: open one from a template on the left.'));
    return;
  }
  const asked = decodeURIComponent(location.hash.slice(1));
  const names = allTargets();
  const first = names.includes(asked) ? asked : (names.includes('order-pipeline') ? 'order-pipeline' : names[0]);
  await busy(() => open(parseTarget(first)));
}

/** For tests and the curious: the state, and whether the page has settled. */
window.flowtime = {
  state: S,
  idle: () => pending() === 0 && S.loading === 0 && !edit.running && !S.awaiting && !S.lost && S.watchReady === true,
  debug: () => ({ target: S.target, pending: pending(), loading: S.loading, editing: edit.running, awaiting: S.awaiting, revision: S.revision, lost: S.lost, watchReady: S.watchReady }),
  redraws: () => performance.getEntriesByName('param-redraw').map((e) => e.duration),
};

start();
