// Sessions and their variants: list, open, create a variant, delete one, open a session from a
// stored template.
import { el, targetName } from './util.js';

/**
 * data: {sessions: [Session], templates: [Template], current: target, onOpen(target),
 * onCreateVariant(session, name), onDeleteVariant(session, name), onOpenSession(templateId, id)}.
 */
export function sessions(data, node) {
  const cur = data.current ? targetName(data.current) : '';
  const items = data.sessions.map((s) => {
    const link = (t, text) => el('a', { href: `#${targetName(t)}`, class: targetName(t) === cur ? 'current' : '', 'data-target': targetName(t),
      onclick: (ev) => { ev.preventDefault(); data.onOpen(t); } }, text);
    const variants = s.variants.map((v) => el('li', { 'data-variant': v },
      link({ session: s.id, variant: v }, v),
      el('button', { type: 'button', class: 'delete', title: `delete ${s.id}/${v}`, onclick: () => data.onDeleteVariant(s.id, v) }, '×')));
    return el('li', { 'data-session': s.id }, link({ session: s.id, variant: '' }, s.id),
      el('small', {}, ` ${s.templateId}@${s.templateVersion} · rev ${s.revision}`), el('ul', { class: 'variants' }, variants));
  });
  const name = el('input', { type: 'text', placeholder: 'variant name', id: 'variant-name', spellcheck: 'false' });
  const create = el('form', { class: 'inline', onsubmit: (ev) => {
    ev.preventDefault();
    if (data.current && name.value.trim()) data.onCreateVariant(data.current.session, name.value.trim());
  } }, name, el('button', { type: 'submit' }, 'create variant'));
  const tpl = el('select', { 'aria-label': 'template' }, data.templates.map((t) => el('option', { value: t.id }, `${t.id}@${t.version}`)));
  const sid = el('input', { type: 'text', placeholder: 'session id (optional)', spellcheck: 'false' });
  const open = el('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); data.onOpenSession(tpl.value, sid.value.trim()); } },
    tpl, sid, el('button', { type: 'submit' }, 'open session'));
  node.replaceChildren(el('ul', { class: 'sessions' }, items), create, el('details', {}, el('summary', {}, 'open a session'), open));
}
