// The parameter panel, generated from the template's typed declarations: sliders for bounded
// numbers, number fields for the others, selects for enums, toggles for booleans, text (with the
// model's node ids offered) for series references. Each change is handed to `onChange` with the
// typed value; errors are shown next to their control.
import { el, num, fmt } from './util.js';

/** The value of a ParamValue JSON for a control. */
function plain(v) {
  if (!v) return '';
  for (const k of ['number', 'integer', 'boolean', 'text', 'series']) if (v[k] !== undefined && v[k] !== null) return k === 'number' ? num(v[k]) : v[k];
  return '';
}

/**
 * data: {decls: [ParamDecl], values: name → ParamValue (effective), overridden: Set of names,
 * seriesIds: [string], onChange(name, ParamValue, timeStamp)}. Returns {error(name, text),
 * clear(name)}.
 */
export function params(data, node) {
  const errors = new Map();
  const list = el('datalist', { id: 'series-ids' }, data.seriesIds.map((s) => el('option', { value: s })));
  const rows = data.decls.map((d) => {
    const value = plain(data.values[d.name] || d.defaultValue);
    const send = (v, ev) => data.onChange(d.name, v, ev ? ev.timeStamp : performance.now());
    let control;
    const bounded = (d.type === 'number' || d.type === 'integer') && d.min !== undefined && d.min !== null && d.max !== undefined && d.max !== null;
    if (bounded) {
      const lo = num(d.min);
      const hi = num(d.max);
      const step = d.type === 'integer' || hi - lo >= 100 ? 1 : (hi - lo) / 100;
      const out = el('output', {}, fmt(num(value)));
      const range = el('input', { type: 'range', min: lo, max: hi, step, value, name: d.name, 'aria-label': d.name });
      range.addEventListener('input', (ev) => {
        out.textContent = range.value;
        send(d.type === 'integer' ? { integer: Number(range.value) } : { number: Number(range.value) }, ev);
      });
      control = el('span', { class: 'slider' }, range, out);
    } else if (d.type === 'boolean') {
      const box = el('input', { type: 'checkbox', name: d.name, checked: value === true });
      box.addEventListener('change', (ev) => send({ boolean: box.checked }, ev));
      control = el('label', { class: 'toggle' }, box, ' on');
    } else if (d.type === 'enum') {
      const sel = el('select', { name: d.name }, d.values.map((v) => el('option', { value: v, selected: v === value }, v)));
      sel.addEventListener('change', (ev) => send({ text: sel.value }, ev));
      control = sel;
    } else {
      // Numbers without both bounds, strings and series references are typed; the server reads
      // the text by the declared type and says where it is wrong.
      const attrs = { type: 'text', name: d.name, value: d.type === 'number' ? fmt(num(value)) : value, spellcheck: 'false' };
      if (d.type === 'number' || d.type === 'integer') attrs.inputmode = 'decimal';
      if (d.type === 'series') attrs.list = 'series-ids';
      const input = el('input', attrs);
      input.addEventListener('change', (ev) => send({ text: input.value }, ev));
      control = input;
    }
    const err = el('div', { class: 'param-error', role: 'alert', hidden: true });
    errors.set(d.name, err);
    const bounds = d.min !== undefined && d.min !== null ? ` ≥ ${fmt(num(d.min))}` : '';
    const upper = d.max !== undefined && d.max !== null ? ` ≤ ${fmt(num(d.max))}` : '';
    return el('div', { class: `param${data.overridden.has(d.name) ? ' overridden' : ''}`, 'data-param': d.name },
      el('label', { title: d.description }, d.name, el('small', {}, ` ${d.type}${bounds}${upper}`)), control, err);
  });
  node.replaceChildren(list, ...rows);
  return {
    error(name, text) { const e = errors.get(name); if (e) { e.textContent = text; e.hidden = false; } },
    clear(name) { const e = errors.get(name); if (e) { e.textContent = ''; e.hidden = true; } },
  };
}
